import {
  appendFileSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

/** A throwaway PostgreSQL server listening on 127.0.0.1, owned by the test run. */
export type PostgresCluster = {
  /** Connection string, e.g. `postgres://postgres@127.0.0.1:54321/postgres` (with the password, if one was set). */
  url: string;
  /** TCP port on 127.0.0.1; stays the same across restart(). */
  port: number;
  /** Fast shutdown, then delete the temp directory. Safe to call twice. */
  stop(): Promise<void>;
  /** Fast shutdown and start again on the same port and data directory. */
  restart(): Promise<void>;
  /** Shuts the server down and leaves it down (an outage); `immediate` is a crash, recovered from on up(). */
  down(mode?: ShutdownMode): Promise<void>;
  /** Starts the server again on the same port and data directory after down(); resolves once it accepts connections. */
  up(): Promise<void>;
};

/** pg_ctl stop modes: `fast` disconnects clients and checkpoints; `immediate` quits at once (crash recovery on the next start). */
type ShutdownMode = "fast" | "immediate";

/** Options for {@link startPostgresCluster}. */
export type PostgresClusterOptions = {
  /** Shows up in the temp directory name and as `cluster_name` in `ps`. */
  name?: string;
  /** The `postgres` role's password, checked on TCP connections (scram-sha-256); default: none, every login trusted. */
  password?: string;
};

type Layout = { root: string; data: string; log: string; port: number; binDir: string; owner: Owner | null };
type Watchdog = { kill(signal?: number | NodeJS.Signals): void };
type Owner = { uid: number; gid: number };

const READY_TIMEOUT_MS = 30_000;
const PG_USER = "postgres";

/** Data directories of clusters that are running, for the crash-cleanup exit handler. */
const live = new Map<string, string>();
let exitHandlerInstalled = false;

/** Creates, starts and waits for a fresh cluster in a new temp directory. */
export async function startPostgresCluster(opts: PostgresClusterOptions = {}): Promise<PostgresCluster> {
  const name = sanitize(opts.name ?? "test");
  const layout = await prepareLayout(name);
  try {
    await initCluster(layout, name, opts.password);
    await startServer(layout);
  } catch (err) {
    rmSync(layout.root, { recursive: true, force: true });
    throw err;
  }
  const watchdog = startWatchdog(layout);
  let stopped = false;
  return {
    url: `postgres://${PG_USER}${opts.password === undefined ? "" : `:${encodeURIComponent(opts.password)}`}@127.0.0.1:${layout.port}/postgres`,
    port: layout.port,
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        await stopServer(layout);
      } finally {
        live.delete(layout.data);
        rmSync(layout.root, { recursive: true, force: true });
        watchdog.kill("SIGKILL");
      }
    },
    async restart() {
      if (stopped) throw new Error("restart() called on a stopped PostgresCluster");
      await stopServer(layout);
      await startServer(layout);
    },
    async down(mode = "fast") {
      if (stopped) throw new Error("down() called on a stopped PostgresCluster");
      await stopServer(layout, mode);
    },
    async up() {
      if (stopped) throw new Error("up() called on a stopped PostgresCluster");
      await startServer(layout);
    },
  };
}

/** Makes the temp dir (owned by `postgres` when we are root) and picks binaries and a port. */
async function prepareLayout(name: string): Promise<Layout> {
  const binDir = findPgBinDir();
  const owner = process.getuid?.() === 0 ? lookupPostgresUser() : null;
  const root = mkdtempSync(join(tmpdir(), `pg-${name}-`));
  if (owner) chownSync(root, owner.uid, owner.gid);
  return { root, data: join(root, "data"), log: join(root, "postgres.log"), port: await findFreePort(), binDir, owner };
}

/** Directory holding initdb/pg_ctl/pg_isready: PATH first, else the newest /usr/lib/postgresql/N/bin. */
function findPgBinDir(): string {
  const onPath = Bun.which("initdb");
  if (onPath) return dirname(realpathSync(onPath));
  const base = "/usr/lib/postgresql";
  const versions = existsSync(base)
    ? readdirSync(base)
        .filter((v) => /^\d+(\.\d+)?$/.test(v) && existsSync(join(base, v, "bin", "initdb")))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const newest = versions[0];
  if (newest === undefined) {
    throw new Error("PostgreSQL server binaries not found: no initdb on PATH or in /usr/lib/postgresql/*/bin (apt-get install postgresql)");
  }
  return join(base, newest, "bin");
}

/** uid/gid of the `postgres` OS user (from /etc/passwd); initdb and postgres refuse to run as root. */
function lookupPostgresUser(): Owner {
  const entry = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .map((line) => line.split(":"))
    .find((fields) => fields[0] === PG_USER);
  if (!entry) {
    throw new Error(
      `Running as root, but OS user '${PG_USER}' does not exist. initdb/postgres refuse to run as root; ` +
        `install Debian's 'postgresql' package (it creates the '${PG_USER}' user) or run the tests as a non-root user.`,
    );
  }
  if (!Bun.which("runuser")) throw new Error("Running as root, but `runuser` (package util-linux) is not on PATH");
  return { uid: Number(entry[2]), gid: Number(entry[3]) };
}

/** Asks the kernel for a free loopback port by binding port 0 and closing again. */
export function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("could not determine a free port"))));
    });
  });
}

/** Runs initdb and appends our settings to postgresql.conf. */
async function initCluster(layout: Layout, name: string, password?: string): Promise<void> {
  const pwfile = join(layout.root, "pwfile");
  if (password !== undefined) {
    writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    if (layout.owner) chownSync(pwfile, layout.owner.uid, layout.owner.gid);
  }
  const auth = password === undefined ? ["--auth=trust"] : ["--auth-local=trust", "--auth-host=scram-sha-256", `--pwfile=${pwfile}`];
  await runAsPg(layout, [
    join(layout.binDir, "initdb"),
    "-D",
    layout.data,
    "-U",
    PG_USER,
    ...auth,
    "--encoding=UTF8",
    "--locale=C.UTF-8",
    "--no-sync",
  ])
    .catch((err: unknown) => {
      const hint = layout.owner ? ` (is ${tmpdir()} traversable by the '${PG_USER}' user?)` : "";
      throw new Error(`initdb failed${hint}: ${errorMessage(err)}`);
    })
    .finally(() => rmSync(pwfile, { force: true }));
  appendFileSync(join(layout.data, "postgresql.conf"), serverSettings(layout, name));
}

/** postgresql.conf lines: loopback only, socket in our temp dir, durability off for speed. */
function serverSettings(layout: Layout, name: string): string {
  const settings: Record<string, string | number> = {
    listen_addresses: "127.0.0.1",
    port: layout.port,
    unix_socket_directories: layout.root,
    cluster_name: name,
    fsync: "off",
    synchronous_commit: "off",
    full_page_writes: "off",
  };
  const lines = Object.entries(settings).map(([k, v]) => `${k} = ${typeof v === "number" ? v : `'${v.replaceAll("'", "''")}'`}`);
  return `\n# added by test/support/postgres-cluster.ts\n${lines.join("\n")}\n`;
}

/** Starts the server with pg_ctl and waits until it accepts connections. */
async function startServer(layout: Layout): Promise<void> {
  await runAsPg(layout, [join(layout.binDir, "pg_ctl"), "start", "-D", layout.data, "-l", layout.log, "-w", "-t", "60"]).catch(
    (err: unknown) => {
      throw new Error(`pg_ctl start failed: ${errorMessage(err)}\n--- server log ---\n${readLog(layout)}`);
    },
  );
  live.set(layout.data, layout.root);
  installExitHandler();
  await waitUntilReady(layout);
}

/** Shuts the server down (fast by default: disconnects clients, no crash recovery needed on the next start). */
async function stopServer(layout: Layout, mode: ShutdownMode = "fast"): Promise<void> {
  if (!existsSync(join(layout.data, "postmaster.pid"))) return;
  await runAsPg(layout, [join(layout.binDir, "pg_ctl"), "stop", "-D", layout.data, "-m", mode, "-w", "-t", "60"]);
}

/** Polls pg_isready until the server accepts connections or the deadline passes. */
async function waitUntilReady(layout: Layout): Promise<void> {
  const isReady = [join(layout.binDir, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", String(layout.port), "-U", PG_USER, "-d", "postgres"];
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const proc = Bun.spawn(isReady, { stdout: "ignore", stderr: "ignore" });
    if ((await proc.exited) === 0) return;
    await Bun.sleep(100);
  }
  throw new Error(`PostgreSQL on port ${layout.port} not ready after ${READY_TIMEOUT_MS} ms\n--- server log ---\n${readLog(layout)}`);
}

/** Runs a command as the `postgres` OS user when we are root, else as ourselves. */
function runAsPg(layout: Layout, cmd: string[]): Promise<string> {
  const argv = layout.owner ? ["runuser", "-u", PG_USER, "--", ...cmd] : cmd;
  return run(argv, layout.root);
}

/** Runs a command to completion; resolves stdout, rejects with stderr on non-zero exit. */
async function run(cmd: string[], cwd?: string): Promise<string> {
  const proc = Bun.spawn(cmd, { cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`\`${cmd.join(" ")}\` exited with ${code}: ${stderr.trim() || stdout.trim()}`);
  return stdout;
}

/**
 * Spawns `sh` that blocks reading a pipe from us; when this process dies in any way (crash,
 * SIGKILL, or `bun test` exiting without running 'exit' listeners) the pipe closes and the
 * shell immediate-shuts-down the postmaster and deletes the temp dir.
 */
function startWatchdog(layout: Layout): Watchdog {
  const script = [
    "read -r _",
    'pid=$(head -n 1 "$1/postmaster.pid" 2>/dev/null) && kill -QUIT "$pid" 2>/dev/null',
    'i=0; while [ -e "$1/postmaster.pid" ] && [ "$i" -lt 60 ]; do sleep 0.05; i=$((i + 1)); done',
    'rm -rf "$2"',
  ].join("\n");
  const proc = Bun.spawn(["sh", "-c", script, "pg-watchdog", layout.data, layout.root], {
    stdin: "pipe",
    stdout: "ignore",
    stderr: "ignore",
  });
  proc.unref();
  return proc;
}

/** Registers (once) a synchronous exit hook that kills leftover postmasters. */
function installExitHandler(): void {
  if (exitHandlerInstalled) return;
  exitHandlerInstalled = true;
  process.on("exit", killLeftovers);
}

/** Best effort: immediate-shutdown (SIGQUIT) each live postmaster and delete its temp dir. */
function killLeftovers(): void {
  for (const [data, root] of live) {
    const pidFile = join(data, "postmaster.pid");
    try {
      const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
      if (pid > 0) {
        process.kill(pid, "SIGQUIT");
        waitForPidFileGone(pidFile, pid, 3_000);
      }
    } catch {
      // already gone
    }
    try {
      rmSync(root, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // best effort
    }
  }
  live.clear();
}

/** Synchronously polls until the postmaster removed its pid file or died (exit handlers can't await). */
function waitForPidFileGone(pidFile: string, pid: number, timeoutMs: number): void {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && existsSync(pidFile) && isAlive(pid)) Bun.sleepSync(10);
}

/** Whether a process with this pid exists (zombies count as alive). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Last part of the server log, for error messages. */
function readLog(layout: Layout): string {
  try {
    return readFileSync(layout.log, "utf8").slice(-4000);
  } catch {
    return "(no log)";
  }
}

/** Keeps names safe for file names and postgresql.conf. */
function sanitize(name: string): string {
  return name.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 40) || "test";
}

/** Message of an unknown thrown value. */
function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
