/** The database ceiling: pgbench's TPC-B-like run on the bench's PostgreSQL cluster, over TCP. */
import type { PostgresCluster } from "../test/support/postgres-cluster";
import { createDatabase } from "../test/support/shop-target";
import { trackPid, untrackPid } from "./cleanup";
import { findPgBin } from "./prerequisites";
import { cpuSince, cpuSnapshot } from "./proc-stats";
import type { BenchSettings } from "./settings";

/** pgbench's figures. */
export interface PgbenchResult {
  tps: number;
  initSeconds: number;
  /** Transactions the timed run completed. */
  transactions: number;
  /**
   * CPU of one TPC-B transaction, ms: what PostgreSQL (postmaster and backends) and pgbench itself
   * used over the timed run, divided by its transactions. The bench's unit of cost.
   */
  cpuMsPerTransaction: number;
  /** That CPU split: the server's and pgbench's, ms per transaction. */
  serverCpuMs: number;
  clientCpuMs: number;
}

/** Initialises a fresh database at the configured scale, then runs the timed TPC-B test; `postmaster` is the cluster's pid (its CPU is counted). */
export async function runPgbench(cluster: PostgresCluster, postmaster: number, s: BenchSettings): Promise<PgbenchResult> {
  const bin = findPgBin("pgbench");
  if (!bin) throw new Error("pgbench not found (apt-get install postgresql)");
  const db = new URL(await createDatabase(cluster.url)).pathname.slice(1);
  // A client: as any user, over TCP to the cluster's port, as its superuser (trust auth).
  const conn = ["-h", "127.0.0.1", "-p", String(cluster.port), "-U", "postgres"];
  const started = performance.now();
  await run([bin, "-i", "-q", "-s", String(s.pgbenchScale), ...conn, db]);
  const initSeconds = (performance.now() - started) / 1000;
  const before = cpuSnapshot({ postgres: postmaster });
  const timed = await run([
    bin,
    "-c",
    String(s.pgbenchClients),
    "-j",
    String(s.pgbenchThreads),
    "-T",
    String(s.pgbenchSeconds),
    ...conn,
    db,
  ]);
  const serverPct = cpuSince(before, { postgres: postmaster }).postgres ?? 0;
  const seconds = (performance.now() - before.at) / 1000;
  const out = timed.out;
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1];
  const transactions = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1]);
  if (tps === undefined || !(transactions > 0)) throw new Error(`pgbench printed no tps or transaction count:\n${out}`);
  const serverCpuMs = (serverPct * 10 * seconds) / transactions;
  const clientCpuMs = timed.cpuMs / transactions;
  return { tps: Number(tps), initSeconds, transactions, cpuMsPerTransaction: serverCpuMs + clientCpuMs, serverCpuMs, clientCpuMs };
}

/** Runs `cmd` to its end; its output and the CPU it used (user + system, ms). */
async function run(cmd: string[]): Promise<{ out: string; cpuMs: number }> {
  const proc = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  trackPid(proc.pid);
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  untrackPid(proc.pid);
  if (code !== 0) throw new Error(`${cmd.join(" ")} exited with ${code}: ${err.trim() || out.trim()}`);
  const usage = proc.resourceUsage();
  const cpuMs = usage ? Number(usage.cpuTime.user + usage.cpuTime.system) / 1000 : Number.NaN;
  return { out, cpuMs };
}
