/**
 * A start that cannot go on says why in its last line: a database that cannot be used names the
 * server (host, port, database, user; never the password) and the cause, at start and in
 * /health; a port in use is found before the database opens; a data directory that a start
 * created goes again when that start does not complete.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { eventually } from "./support/eventually";
import { call } from "./support/http";
import { type PostgresCluster, startPostgresCluster } from "./support/postgres-cluster";
import { createDatabase, processEnv, startInProcess } from "./support/shop-target";

const ROOT = join(import.meta.dir, "..");
const PASSWORD = "right-horse-battery-7";
const dirs: string[] = [];
let cluster: PostgresCluster;

beforeAll(async () => {
  cluster = await startPostgresCluster({ name: "start-errors", password: PASSWORD });
});
afterAll(async () => {
  await cluster?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Runs `bun run src/app/main.ts args` to its exit; its stderr as lines. */
async function runShop(args: string[], extra: Record<string, string>) {
  const proc = Bun.spawn(["bun", "run", "src/app/main.ts", ...args], {
    cwd: ROOT,
    env: { ...processEnv(extra), PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR },
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  const lines = stderr.split("\n").filter((l) => l !== "");
  return { code, stderr, lines, failure: lines.find((l) => l.startsWith("failed to start: ")) };
}

/** A loopback port nobody listens on: bound by the kernel's choice, then released. */
function freePort(): number {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
}

const withDatabase = (url: string, path: string) => {
  const u = new URL(url);
  u.pathname = `/${path}`;
  return u.toString();
};

describe("a database that cannot be used: one line naming the server and the cause, never the password", () => {
  test("refused (a port nobody listens on): exit 1, `failed to start:` names host, port and ECONNREFUSED", async () => {
    const port = freePort();
    const run = await runShop(["--modules", "wallet"], { DATABASE_URL: `postgres://shop:not-printed-9@127.0.0.1:${port}/shop` });
    expect(run.code).toBe(1);
    expect(run.failure).toBe(
      `failed to start: PostgreSQL at 127.0.0.1:${port} (database "shop", user "shop") cannot be reached: connection refused (ECONNREFUSED)`,
    );
    expect(run.stderr).not.toContain("not-printed-9");
  });

  test("unknown host (a name under .invalid): exit 1, `failed to start:` names the host, the port and the failed lookup", async () => {
    const run = await runShop(["--modules", "wallet"], { DATABASE_URL: "postgres://shop:not-printed-9@no-such-host.invalid:6543/shop" });
    expect(run.code).toBe(1);
    // ENOTFOUND from a resolver that answers; EAI_AGAIN where no resolver is reachable at all.
    expect(run.failure).toMatch(
      /^failed to start: PostgreSQL at no-such-host\.invalid:6543 \(database "shop", user "shop"\) cannot be reached: (unknown host \(ENOTFOUND|host name lookup failed for now \(EAI_AGAIN) no-such-host\.invalid\)$/,
    );
    expect(run.stderr).not.toContain("not-printed-9");
  });

  test("wrong password: exit 1 at once (no retries), `failed to start:` names the server and the server's refusal", async () => {
    const url = new URL(cluster.url);
    url.password = "wrong-password-3";
    const run = await runShop(["--modules", "wallet"], { DATABASE_URL: url.toString() });
    expect(run.code).toBe(1);
    expect(run.failure).toBe(
      `failed to start: PostgreSQL at 127.0.0.1:${cluster.port} (database "postgres", user "postgres") refused the login: password authentication failed for user "postgres" (28P01)`,
    );
    expect(run.stderr).not.toContain("retrying");
    expect(run.stderr).not.toContain("wrong-password-3");
  });

  test("wrong database: exit 1 at once, `failed to start:` names the database and the server's refusal", async () => {
    const run = await runShop(["--modules", "wallet"], { DATABASE_URL: withDatabase(cluster.url, "no_such_db") });
    expect(run.code).toBe(1);
    expect(run.failure).toBe(
      `failed to start: PostgreSQL at 127.0.0.1:${cluster.port} (database "no_such_db", user "postgres") refused the connection: database "no_such_db" does not exist (3D000)`,
    );
    expect(run.stderr).not.toContain(PASSWORD);
  });

  test("/health after the database went away: the database check names the server and the cause", async () => {
    const url = await createDatabase(cluster.url);
    const name = new URL(url).pathname.slice(1);
    const t = await startInProcess({ DATABASE_URL: url });
    try {
      expect((await call(t.urls.wallet, "GET", "/health")).status).toBe(200);
      await cluster.down();
      // Connections in use see the server close them first; a new one is refused.
      const failed = await eventually(async () => {
        const r = await call(t.urls.wallet, "GET", "/health?timeout=5");
        const error = r.body?.checks?.database?.error as string | undefined;
        return r.status === 503 && error?.includes("ECONNREFUSED") ? error : false;
      }, 60_000);
      expect(failed).toBe(
        `PostgreSQL at 127.0.0.1:${cluster.port} (database "${name}", user "postgres") cannot be reached: connection refused (ECONNREFUSED)`,
      );
      expect(JSON.stringify((await call(t.urls.registry, "GET", "/health?timeout=5")).body)).not.toContain(PASSWORD);
    } finally {
      await cluster.up();
      await t.stop();
    }
  });
});

describe("a port in use is found before the database opens", () => {
  test("PGlite, a new DATA_DIR: exit 1 naming the module, the setting and the port; the directory is never made", async () => {
    const parent = mkdtempSync(join(tmpdir(), "shop-ports-"));
    dirs.push(parent);
    const dataDir = join(parent, "new", "data");
    const squatter = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("taken") });
    try {
      const run = await runShop([], { DATA_DIR: dataDir, STORAGE_PORT: String(squatter.port) });
      expect(run.code).toBe(1);
      expect(run.stderr).not.toContain("opening the embedded database");
      expect(run.stderr).not.toContain("PGlite open");
      expect(readdirSync(parent)).toEqual([]);
      expect(run.failure).toStartWith(
        `failed to start: storage cannot listen on 127.0.0.1:${squatter.port}: the port is in use (STORAGE_PORT ${squatter.port}; another shop still running?)`,
      );
      expect(run.failure).toContain("STORAGE_PORT=<port> or --storage-port <port>");
    } finally {
      squatter.stop(true);
    }
  });

  test("PostgreSQL: exit 1 before any migration (no drizzle schema in the database)", async () => {
    const url = await createDatabase(cluster.url);
    const squatter = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("taken") });
    try {
      const run = await runShop(["--modules", "registry,wallet", "--wallet-port", String(squatter.port)], { DATABASE_URL: url });
      expect(run.code).toBe(1);
      const sql = postgres(url, { max: 1, onnotice: () => {} });
      try {
        const schemas = await sql`select nspname from pg_namespace where nspname = 'drizzle'`;
        expect(schemas.length).toBe(0);
      } finally {
        await sql.end();
      }
      expect(run.failure).toStartWith(
        `failed to start: wallet cannot listen on 127.0.0.1:${squatter.port}: the port is in use (--wallet-port ${squatter.port};`,
      );
    } finally {
      squatter.stop(true);
    }
  });
});

describe("a start that does not complete leaves no data directory it created", () => {
  test("SIGTERM while the embedded database opens: 503 starting with Retry-After meanwhile; a new DATA_DIR is removed, an existing one kept", async () => {
    const parent = mkdtempSync(join(tmpdir(), "shop-first-start-"));
    dirs.push(parent);
    const fresh = join(parent, "fresh", "data");
    const existing = join(parent, "existing");
    mkdirSync(existing);
    const start = (dataDir: string) => {
      const proc = Bun.spawn(["bun", "run", "src/app/main.ts", "--modules", "wallet"], {
        cwd: ROOT,
        env: { ...processEnv({ DATA_DIR: dataDir }), PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR },
        stdin: "ignore",
        stdout: "ignore",
        stderr: "pipe",
      });
      const lines: string[] = [];
      void (async () => {
        for await (const chunk of proc.stderr) lines.push(...new TextDecoder().decode(chunk).split("\n"));
      })();
      return { proc, lines };
    };
    const runs = [start(fresh), start(existing)];
    for (const { proc, lines } of runs) {
      // The port is bound before the database opens; it answers "starting" until the app is mounted.
      const bound = await eventually(() => lines.find((l) => l.includes('"msg":"ports bound; 503 until started"')) ?? false, 60_000);
      await eventually(() => lines.some((l) => l.includes('"msg":"opening the embedded database"')), 60_000);
      const url = (JSON.parse(bound) as { urls: { wallet: string } }).urls.wallet;
      const health = await fetch(`${url}/health`);
      expect(health.status).toBe(503);
      expect(health.headers.get("retry-after")).toBe("2");
      expect(health.headers.get("x-content-type-options")).toBe("nosniff");
      expect(((await health.json()) as { checks: { start: { error: string } } }).checks.start.error).toStartWith("starting: ");
      expect((await fetch(`${url}/health/live`)).status).toBe(200);
      const write = await fetch(`${url}/wallets/1/deposits`, {
        method: "POST",
        body: "{}",
        headers: { "content-type": "application/json" },
      });
      expect(write.status).toBe(503);
      expect(((await write.json()) as { error: { code: string } }).error.code).toBe("not_ready");
      proc.kill("SIGTERM");
    }
    for (const { proc, lines } of runs) {
      expect(await proc.exited).toBe(0);
      expect(lines.some((l) => l.includes('"msg":"stopped during start"'))).toBe(true);
    }
    expect(existsSync(join(parent, "fresh"))).toBe(false);
    expect(existsSync(existing)).toBe(true);
    expect(readdirSync(parent).sort()).toEqual(["existing"]);
  });
});
