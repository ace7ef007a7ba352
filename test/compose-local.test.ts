/**
 * docker-compose.yml run as processes (`bun run compose:local`): its commands, environment,
 * keys script, health checks, start order and gateway configuration are exercised for real.
 * Orders go through the gateway, a service is killed and comes back by its restart policy,
 * the audit (registry's, with the one token compose gives all three) is clean, and stopping
 * leaves no process behind. The reading of the file (interpolation, volumes, order) and the
 * stand-in for Docker's DNS are checked on their own first.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ComposeError, interpolate, loadCompose } from "../scripts/compose-local/compose-file";
import { answer } from "../scripts/compose-local/dns";
import { eventually } from "./support/eventually";

const ROOT = join(import.meta.dir, "..");

describe("reading docker-compose.yml as Compose does", () => {
  test("interpolation: defaults, required variables, $$ and the environment over .env", () => {
    const vars = { A: "a", EMPTY: "" };
    expect(interpolate("${A}-${B:-b}-${EMPTY:-e}-${EMPTY-kept}-$$HOME-$A", vars, "x")).toBe("a-b-e--$HOME-a");
    expect(() => interpolate("${NOPE:?must be set}", vars, "services.x.environment.Y")).toThrow(
      new ComposeError("services.x.environment.Y: NOPE is required: must be set"),
    );
  });

  test("the project's file: every service, its dependencies first; published ports on PUBLISH_HOST", () => {
    const project = loadCompose(join(ROOT, "docker-compose.yml"), { PUBLISH_HOST: "127.0.0.9", GATEWAY_WALLET_PORT: "18001" });
    const names = project.services.map((s) => s.name);
    expect(names.sort()).toEqual(["gateway", "kafka", "keys", "postgres", "registry", "storage", "wallet"]);
    const order = project.services.map((s) => s.name);
    for (const s of project.services)
      for (const dep of Object.keys(s.dependsOn)) expect(order.indexOf(dep)).toBeLessThan(order.indexOf(s.name));
    const gateway = project.services.find((s) => s.name === "gateway");
    expect(gateway?.ports).toContainEqual({ hostIp: "127.0.0.9", hostPort: 18001, containerPort: 8001 });
    expect(gateway?.dependsOn).toEqual({ registry: "service_healthy", wallet: "service_healthy", storage: "service_healthy" });
    // One image for the keys service and the three modules.
    const images = new Set(project.services.filter((s) => s.built).map((s) => s.image));
    expect(images).toEqual(new Set(["shop:local"]));
    // Every published port of every profile binds the one documented interface.
    const all = loadCompose(join(ROOT, "docker-compose.yml"), {}, ["tools", "observability"]);
    for (const s of all.services) for (const p of s.ports) expect(`${s.name} ${p.hostIp}`).toBe(`${s.name} 127.0.0.1`);
    expect(all.services.find((s) => s.name === "jaeger")?.ports.map((p) => p.containerPort)).toContain(4318);
  });

  test("a mistake in the file is named: an undeclared volume, a dependency that does not run", () => {
    const dir = mkdtempSync(join(tmpdir(), "compose-file-"));
    try {
      const file = join(dir, "docker-compose.yml");
      writeFileSync(file, "services:\n  a:\n    image: x\n    volumes: [ 'nope:/data' ]\n");
      expect(() => loadCompose(file, {})).toThrow('services.a.volumes: volume "nope" is not declared under volumes:');
      writeFileSync(file, "services:\n  a:\n    image: x\n    depends_on: [ b ]\n  b:\n    image: y\n    profiles: [ extra ]\n");
      expect(() => loadCompose(file, {})).toThrow('services.a.depends_on: "b" is not a service that runs');
      writeFileSync(file, "services:\n  a:\n    image: x\n    environment:\n      K: ${WHO:?set WHO in .env}\n");
      expect(() => loadCompose(file, {})).toThrow("WHO is required: set WHO in .env");
      writeFileSync(join(dir, ".env"), "WHO=me\n");
      expect(loadCompose(file, {}).services[0]?.environment.K).toBe("me");
      expect(loadCompose(file, { WHO: "shell" }).services[0]?.environment.K).toBe("shell");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the DNS stand-in answers a service's name with every replica, and NXDOMAIN otherwise", () => {
    // A query for "wallet", type A, class IN, id 0x1234.
    const query = new Uint8Array([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 6, ...new TextEncoder().encode("wallet"), 0, 0, 1, 0, 1]);
    const lookup = (name: string) => (name === "wallet" ? ["127.0.10.3", "127.0.10.4"] : []);
    const reply = answer(query, lookup) as Uint8Array;
    expect([reply[0], reply[1], (reply[3] as number) & 0x0f, reply[7]]).toEqual([0x12, 0x34, 0, 2]);
    expect([...reply.subarray(reply.length - 4)]).toEqual([127, 0, 10, 4]);
    const other = query.slice();
    other.set(new TextEncoder().encode("nobody"), 13);
    expect((answer(other, lookup) as Uint8Array)[3]! & 0x0f).toBe(3);
  });
});

/** A free TCP port on 127.0.0.1. */
async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

type State = { services: Record<string, { pid: number | null; address: string; restarts: number }[]> };

describe("bun run compose:local", () => {
  const state = mkdtempSync(join(tmpdir(), "compose-local-"));
  let proc: ReturnType<typeof Bun.spawn> | null = null;
  let output = "";
  afterAll(async () => {
    if (proc && proc.exitCode === null) {
      proc.kill("SIGTERM");
      await proc.exited;
    }
    rmSync(state, { recursive: true, force: true });
  });

  test("runs the compose file: orders through the gateway, a killed service restarts, the audit is clean, stop leaves nothing", async () => {
    const ports = { registry: await freePort(), wallet: await freePort(), storage: await freePort() };
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/root",
      PUBLISH_HOST: "127.0.0.1",
      GATEWAY_REGISTRY_PORT: String(ports.registry),
      GATEWAY_WALLET_PORT: String(ports.wallet),
      GATEWAY_STORAGE_PORT: String(ports.storage),
    };
    const p = Bun.spawn(["bun", join(ROOT, "scripts/compose-local.ts"), "--fresh", "--state-dir", state], {
      cwd: ROOT,
      env,
      stdout: "pipe",
      stderr: "pipe",
    });
    proc = p;
    void (async () => {
      for await (const chunk of p.stdout as ReadableStream<Uint8Array>) output += new TextDecoder().decode(chunk);
    })();
    void (async () => {
      for await (const chunk of p.stderr as ReadableStream<Uint8Array>) output += new TextDecoder().decode(chunk);
    })();
    await eventually(() => {
      if (p.exitCode !== null) throw new Error(`compose:local exited ${p.exitCode}:\n${output.slice(-3000)}`);
      expect(output).toContain("compose:local: up");
    }, 240_000);

    const url = (name: keyof typeof ports) => `http://127.0.0.1:${ports[name]}`;
    const token = readFileSync(join(state, "volumes/shop-keys/admin-token"), "utf8").trim();
    expect(token.length).toBeGreaterThanOrEqual(16);
    const admin = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    const post = async (base: string, path: string, body: unknown, headers: Record<string, string> = admin) => {
      const r = await fetch(`${base}${path}`, { method: "POST", headers, body: JSON.stringify(body) });
      return { status: r.status, body: (await r.json()) as { id?: string } };
    };
    const settled = async (id: string) =>
      await eventually(async () => {
        const order = (await (await fetch(`${url("registry")}/orders/${id}`)).json()) as { status: string };
        expect(order.status).not.toBe("pending");
        return order.status;
      }, 120_000);

    // The keys service's token is the one every service takes: deposits and receipts through the gateway.
    expect([200, 201]).toContain((await post(url("wallet"), "/wallets/501/deposits", { amount_cents: 1_000_000 })).status);
    expect([200, 201]).toContain((await post(url("storage"), "/stock/1/receipts", { quantity: 50 })).status);
    const order = () =>
      post(url("registry"), "/orders", { user_id: 501, items: [{ product_id: 1, quantity: 1 }] }, { "content-type": "application/json" });
    const first = await order();
    expect(first.status).toBe(201);
    expect(await settled(first.body.id as string)).toBe("completed");

    // kill -9 of wallet: compose's restart policy brings it back, and an order placed meanwhile completes.
    const read = () => JSON.parse(readFileSync(join(state, "services.json"), "utf8")) as State;
    const wallet = read().services.wallet?.[0];
    expect(wallet?.pid).toBeNumber();
    process.kill(wallet?.pid as number, "SIGKILL");
    const during = await order();
    expect(during.status).toBe(201);
    await eventually(() => {
      const now = read().services.wallet?.[0];
      expect(now?.restarts).toBe(1);
      expect(now?.pid).not.toBe(wallet?.pid);
    }, 60_000);
    await eventually(async () => expect((await fetch(`${url("wallet")}/health/ready`)).status).toBe(200), 120_000);
    expect(await settled(during.body.id as string)).toBe("completed");

    // The audit: registry's own (it asks the others with the one token) and bun run audit through the gateway.
    const audit = (await (await fetch(`${url("registry")}/admin/audit`, { headers: admin })).json()) as {
      ok: boolean;
      violations: string[];
    };
    expect(audit.violations).toEqual([]);
    expect(audit.ok).toBe(true);
    const cli = Bun.spawnSync(
      [
        "bun",
        join(ROOT, "scripts/audit.ts"),
        "--registry-url",
        url("registry"),
        "--wallet-url",
        url("wallet"),
        "--storage-url",
        url("storage"),
      ],
      {
        env: { ...env, ADMIN_TOKEN: token },
      },
    );
    expect(`${cli.stdout}`).toContain("clean");
    expect(cli.exitCode).toBe(0);

    // Stop: every process it started is gone.
    const pids = Object.values(read().services).flatMap((list) => list.map((r) => r.pid).filter((x): x is number => x !== null));
    p.kill("SIGTERM");
    expect(await p.exited).toBe(0);
    expect(output).toContain("compose:local: stopped");
    const alive = pids.filter((pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    });
    expect(alive).toEqual([]);
  }, 600_000);
});
