/** Start, stop and restart: clean signals, data kept across restarts, saga deadline, database restarts. */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eventually } from "./support/eventually";
import { adminHeaders, call, getJson } from "./support/http";
import { type PostgresCluster, startPostgresCluster } from "./support/postgres-cluster";
import { startShopProcess } from "./support/process";
import { createDatabase, processEnv, startInProcess } from "./support/shop-target";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const envWithData = (dataDir: string) => processEnv({ DATA_DIR: dataDir });

describe("the shop process", () => {
  test("SIGTERM and SIGINT stop it cleanly; a restart on the same data keeps everything", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "shop-data-"));
    dirs.push(dataDir);
    const first = await startShopProcess([], envWithData(dataDir), 3);
    expect((await call(first.urls.wallet as string, "POST", "/wallets/41/deposits", { amount_cents: 9000 }, adminHeaders)).status).toBe(
      201,
    );
    expect((await call(first.urls.storage as string, "POST", "/stock/41/receipts", { quantity: 4 }, adminHeaders)).status).toBe(201);
    const placed = await call(first.urls.registry as string, "POST", "/orders", { user_id: 41, items: [{ product_id: 41, quantity: 3 }] });
    expect(placed.status).toBe(201);
    await eventually(async () => (await getJson(first.urls.registry as string, `/orders/${placed.body.id}`)).status === "completed");
    expect(await first.stop("SIGTERM")).toBe(0);
    expect(first.logs.some((l) => l.includes('"msg":"stopped"'))).toBe(true);

    const second = await startShopProcess([], envWithData(dataDir), 3);
    const order = await getJson(second.urls.registry as string, `/orders/${placed.body.id}`);
    expect(order).toMatchObject({ status: "completed", total_cents: 3000 });
    expect(await getJson(second.urls.wallet as string, "/wallets/41")).toMatchObject({ balance_cents: 6000 });
    expect(await getJson(second.urls.storage as string, "/stock/41")).toMatchObject({ available: 1, reserved: 3 });
    expect(await second.stop("SIGINT")).toBe(0);
  });

  test("with no broker it waits, says so, and a signal still stops it cleanly", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "shop-data-"));
    dirs.push(dataDir);
    const proc = Bun.spawn(["bun", "run", "src/app/main.ts", "--modules", "wallet", "--bus", "kafka"], {
      cwd: join(import.meta.dir, ".."),
      env: { ...envWithData(dataDir), PATH: process.env.PATH, KAFKA_BROKERS: "127.0.0.1:9" },
      stdout: "ignore",
      stderr: "pipe",
    });
    const lines: string[] = [];
    const reader = (async () => {
      for await (const chunk of proc.stderr) lines.push(...new TextDecoder().decode(chunk).split("\n"));
    })();
    await eventually(() => lines.some((l) => l.includes('"msg":"waiting for Kafka"') && l.includes("127.0.0.1:9")), 30_000);
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    await reader;
    expect(lines.some((l) => l.includes('"msg":"stopped"'))).toBe(true);
    // The database was closed cleanly: the same data directory opens again.
    const again = await startShopProcess(["--modules", "wallet"], envWithData(dataDir), 1);
    expect((await call(again.urls.wallet as string, "GET", "/health")).status).toBe(200);
    expect(await again.stop()).toBe(0);
  });

  test("one owner per data directory: a second process refuses to start; a lock left by a killed process is taken over", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "shop-data-"));
    dirs.push(dataDir, `${dataDir}.lock`);
    const first = await startShopProcess(["--modules", "wallet"], envWithData(dataDir), 1);
    const second = Bun.spawn(["bun", "run", "src/app/main.ts", "--modules", "storage"], {
      cwd: join(import.meta.dir, ".."),
      env: { ...envWithData(dataDir), PATH: process.env.PATH },
      stdout: "ignore",
      stderr: "pipe",
    });
    const [code, stderr] = await Promise.all([second.exited, new Response(second.stderr).text()]);
    expect(code).toBe(1);
    expect(stderr).toContain(`${dataDir} is in use by process ${first.proc.pid}`);
    // The owner never noticed.
    expect((await call(first.urls.wallet as string, "GET", "/health")).status).toBe(200);
    first.proc.kill("SIGKILL");
    await first.proc.exited;
    expect(await Bun.file(`${dataDir}.lock`).text()).toBe(`${first.proc.pid}\n`);
    const next = await startShopProcess(["--modules", "wallet"], envWithData(dataDir), 1);
    expect((await call(next.urls.wallet as string, "GET", "/health")).status).toBe(200);
    expect(await next.stop()).toBe(0);
    // Released on a clean stop.
    expect(await Bun.file(`${dataDir}.lock`).exists()).toBe(false);
  });

  test("Ctrl-C twice (the terminal's and the `bun run` wrapper's): one clean stop, exit 0, the data directory released", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "shop-data-"));
    dirs.push(dataDir, `${dataDir}.lock`);
    const p = await startShopProcess(["--modules", "wallet"], envWithData(dataDir), 1);
    p.proc.kill("SIGINT");
    // The second arrives while the first is being handled (a pending signal would merge with it).
    await eventually(() => p.logs.some((l) => l.includes('"msg":"signal received"')));
    p.proc.kill("SIGINT");
    expect(await p.proc.exited).toBe(0);
    await eventually(() => p.logs.some((l) => l.includes('"msg":"stopped"')));
    expect(await Bun.file(`${dataDir}.lock`).exists()).toBe(false);
  });

  for (const script of ["dev", "start"]) {
    test(`Ctrl-C under \`bun run ${script}\` (SIGINT to the whole process group, as a terminal sends it): stopped, exit 0, the data directory released`, async () => {
      const dataDir = mkdtempSync(join(tmpdir(), "shop-data-"));
      dirs.push(dataDir, `${dataDir}.lock`);
      const p = await startShopProcess(["--modules", "wallet"], envWithData(dataDir), 1, 60_000, {
        command: ["bun", "run", script],
        detached: true,
      });
      // The group holds the `bun run` wrapper and the shop: both get it, and the wrapper forwards its own.
      process.kill(-(p.proc.pid as number), "SIGINT");
      expect(await p.proc.exited).toBe(0);
      await eventually(() => p.logs.some((l) => l.includes('"msg":"stopped"')));
      expect(p.logs.some((l) => l.includes('"level":"error"'))).toBe(false);
      expect(await Bun.file(`${dataDir}.lock`).exists()).toBe(false);
    });
  }

  test("a port in use: exit 1 naming the module, the address and how to choose another port; the data directory released", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "shop-data-"));
    dirs.push(dataDir, `${dataDir}.lock`);
    const squatter = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("taken") });
    try {
      const proc = Bun.spawn(["bun", "run", "src/app/main.ts", "--modules", "wallet", "--wallet-port", String(squatter.port)], {
        cwd: join(import.meta.dir, ".."),
        env: { ...envWithData(dataDir), PATH: process.env.PATH },
        stdout: "ignore",
        stderr: "pipe",
      });
      const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
      expect(code).toBe(1);
      expect(stderr).toContain(`failed to start: wallet cannot listen on 127.0.0.1:${squatter.port}: the port is in use`);
      expect(stderr).toContain("WALLET_PORT=<port>");
      expect(await Bun.file(`${dataDir}.lock`).exists()).toBe(false);
    } finally {
      squatter.stop(true);
    }
  });

  test("--modules starts only the named modules", async () => {
    const p = await startShopProcess(["--modules", "wallet"], envWithData(":memory:"), 1);
    expect(Object.keys(p.urls)).toEqual(["wallet"]);
    expect((await call(p.urls.wallet as string, "GET", "/health")).status).toBe(200);
    expect(await p.stop()).toBe(0);
  });
});

describe("saga deadline", () => {
  test("an order nobody finishes is rejected with timeout, and the debit is refunded", async () => {
    // No storage module: wallet debits, nobody reserves, registry gives up after the deadline.
    const t = await startInProcess({ MODULES: "registry,wallet", REGISTRY_SAGA_DEADLINE_SECONDS: "0.5" });
    try {
      await call(t.urls.wallet, "POST", "/wallets/51/deposits", { amount_cents: 5000 }, adminHeaders);
      const placed = await call(t.urls.registry, "POST", "/orders", { user_id: 51, items: [{ product_id: 51, quantity: 2 }] });
      expect(placed.status).toBe(201);
      const done = await eventually(async () => {
        const o = await getJson(t.urls.registry, `/orders/${placed.body.id}`);
        return o.status === "rejected" ? o : false;
      });
      expect(done.reason).toBe("timeout");
      expect((done.timeline as { step: string }[]).map((e) => e.step)).toContain("rejected");
      await eventually(async () => {
        const w = await getJson(t.urls.wallet, "/wallets/51");
        expect(w.balance_cents).toBe(5000);
        expect(
          (w.ledger as { kind: string; order_id: string }[])
            .filter((e) => e.order_id === placed.body.id)
            .map((e) => e.kind)
            .sort(),
        ).toEqual(["debit", "refund"]);
      });
    } finally {
      await t.stop();
    }
  });
});

describe("admission control", () => {
  test("while too many orders are pending, a new one waits, then gets 503 overloaded with Retry-After", async () => {
    // Registry alone: nobody answers its orders, so they stay pending.
    const t = await startInProcess({ MODULES: "registry", REGISTRY_MAX_PENDING_ORDERS: "3", REGISTRY_ADMISSION_WAIT_MS: "300" });
    try {
      const place = () =>
        fetch(`${t.urls.registry}/orders`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ user_id: 1, items: [{ product_id: 1, quantity: 1 }] }),
        });
      for (let i = 0; i < 3; i++) expect((await place()).status).toBe(201);
      const refused = await place();
      expect(refused.status).toBe(503);
      expect(refused.headers.get("retry-after")).toBe("1");
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("overloaded");
      expect((await getJson(t.urls.registry, "/orders?limit=10")).orders).toHaveLength(3);
    } finally {
      await t.stop();
    }
  });
});

describe("PostgreSQL restarts", () => {
  let cluster: PostgresCluster | null = null;
  afterAll(async () => {
    await cluster?.stop();
  });

  test("the shop answers 503 while the database is down and recovers by itself", async () => {
    cluster = await startPostgresCluster({ name: "restart" });
    const t = await startInProcess({ DATABASE_URL: await createDatabase(cluster.url) });
    try {
      await call(t.urls.wallet, "POST", "/wallets/61/deposits", { amount_cents: 5000 }, adminHeaders);
      await call(t.urls.storage, "POST", "/stock/61/receipts", { quantity: 5 }, adminHeaders);
      await cluster.restart();
      // The pool reconnects on demand: the next orders go through and complete.
      const placed = await eventually(async () => {
        const r = await call(t.urls.registry, "POST", "/orders", { user_id: 61, items: [{ product_id: 61, quantity: 1 }] });
        if (r.status !== 201) {
          expect(r.status).toBe(503);
          expect(r.body.error.code).toBe("unavailable");
          return false;
        }
        return r.body as { id: string };
      });
      await eventually(async () => (await getJson(t.urls.registry, `/orders/${placed.id}`)).status === "completed");
      expect(await getJson(t.urls.wallet, "/wallets/61")).toMatchObject({ balance_cents: 4000 });
      expect((await call(t.urls.registry, "GET", "/health?timeout=5")).status).toBe(200);
    } finally {
      await t.stop();
    }
  });
});
