/** The database ceiling: pgbench's TPC-B-like run on the bench's PostgreSQL cluster, over TCP. */
import type { PostgresCluster } from "../test/support/postgres-cluster";
import { createDatabase } from "../test/support/shop-target";
import { trackPid, untrackPid } from "./cleanup";
import { findPgBin } from "./prerequisites";
import type { BenchSettings } from "./settings";

/** pgbench's figures. */
export interface PgbenchResult {
  tps: number;
  initSeconds: number;
}

/** Initialises a fresh database at the configured scale, then runs the timed TPC-B test. */
export async function runPgbench(cluster: PostgresCluster, s: BenchSettings): Promise<PgbenchResult> {
  const bin = findPgBin("pgbench");
  if (!bin) throw new Error("pgbench not found (apt-get install postgresql)");
  const db = new URL(await createDatabase(cluster.url)).pathname.slice(1);
  // A client: as any user, over TCP to the cluster's port, as its superuser (trust auth).
  const conn = ["-h", "127.0.0.1", "-p", String(cluster.port), "-U", "postgres"];
  const started = performance.now();
  await run([bin, "-i", "-q", "-s", String(s.pgbenchScale), ...conn, db]);
  const initSeconds = (performance.now() - started) / 1000;
  const out = await run([bin, "-c", String(s.pgbenchClients), "-j", String(s.pgbenchThreads), "-T", String(s.pgbenchSeconds), ...conn, db]);
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1];
  if (tps === undefined) throw new Error(`pgbench printed no tps:\n${out}`);
  return { tps: Number(tps), initSeconds };
}

async function run(cmd: string[]): Promise<string> {
  const proc = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  trackPid(proc.pid);
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  untrackPid(proc.pid);
  if (code !== 0) throw new Error(`${cmd.join(" ")} exited with ${code}: ${err.trim() || out.trim()}`);
  return out;
}
