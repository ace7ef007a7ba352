/**
 * `bun run soak`: a steady open-loop order load on one shop process (memory bus) for ten
 * minutes, with every retention window shortened to a minute, to show that nothing grows
 * without bound. Every 30 s it samples the shop's RSS and CPU, the latency of a trivial
 * request (the event loop's lag as a client sees it) and the row counts of the tables that
 * grow with traffic; it prints one row per sample, then whether each series levelled off.
 *
 * PostgreSQL by default (a throwaway cluster, so the tables can be counted while the shop
 * runs); `--pglite` runs the shop on PGlite in a temp dir instead and counts the tables once,
 * after it stopped (nothing else can open its data directory while it runs).
 * Settings come from SOAK_* variables (readSoakSettings); progress goes to stderr.
 */
import { cpus, loadavg } from "node:os";
import { PGlite } from "@electric-sql/pglite";
import postgres from "postgres";
import { PGLITE_OPTIONS } from "../src/db/pglite-tuning";
import { startPostgresCluster } from "../test/support/postgres-cluster";
import { cleanUp, defer, installSignalHandlers } from "./cleanup";
import { launch, type RunningShop } from "./launch";
import { benchUsers, postAtRate, stockUp } from "./load";
import { OrderTracker } from "./order-tracker";
import { type PhaseResult, summarise } from "./phase";
import { cpuSince, cpuSnapshot, machineSince, machineSnapshot, rssMb } from "./proc-stats";
import { readSettings } from "./settings";
import {
  COUNTED,
  type Counter,
  counterFor,
  fmt,
  judge,
  PRUNED_FILES_QUERY,
  Prober,
  probeUrl,
  relationFilesMb,
  type Sample,
} from "./soak-figures";
import { num, renderTable } from "./table";
import { prepareTopology } from "./topologies";

/** What a soak run is parameterised by. */
interface SoakSettings {
  /** Where the shop keeps its data (SOAK_MODE, or the flag --postgres / --pglite). */
  mode: "postgres" | "pglite";
  /** How long the load runs (SOAK_SECONDS). */
  seconds: number;
  /** Orders posted per second, open loop (SOAK_RATE). */
  rate: number;
  /** Time between two samples (SOAK_SAMPLE_SECONDS). */
  sampleSeconds: number;
  /** Every retention window of every module, in seconds (SOAK_RETENTION_SECONDS). */
  retentionSeconds: number;
  /** Share of orders sent with a fresh Idempotency-Key (SOAK_KEY_SHARE). */
  keyShare: number;
  /** Share of orders placed by users without a wallet, which the saga rejects (SOAK_REJECT_SHARE). */
  rejectShare: number;
  /** Users the orders go round (SOAK_USERS). */
  users: number;
  /** Time between two probes of the trivial request (SOAK_PROBE_MS). */
  probeMs: number;
}

/** Reads the settings from SOAK_* variables and the --postgres / --pglite flag. */
function readSoakSettings(argv: string[], env: Record<string, string | undefined>): SoakSettings {
  const value = (name: string, fallback: number, min: number, max = Number.POSITIVE_INFINITY): number => {
    const raw = env[name];
    if (raw === undefined || raw === "") return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || n > max)
      throw new Error(`${name}: expected a number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
    return n;
  };
  let mode = env.SOAK_MODE || "postgres";
  for (const arg of argv) {
    if (arg === "--pglite" || arg === "--postgres") mode = arg.slice(2);
    else throw new Error(`unknown argument ${arg} (expected --postgres or --pglite)`);
  }
  if (mode !== "postgres" && mode !== "pglite") throw new Error(`SOAK_MODE: expected postgres or pglite, got ${JSON.stringify(mode)}`);
  return {
    mode,
    seconds: value("SOAK_SECONDS", 600, 10),
    rate: value("SOAK_RATE", 30, 0.1),
    sampleSeconds: value("SOAK_SAMPLE_SECONDS", 30, 1),
    retentionSeconds: value("SOAK_RETENTION_SECONDS", 60, 1),
    keyShare: value("SOAK_KEY_SHARE", 0.5, 0, 1),
    rejectShare: value("SOAK_REJECT_SHARE", 0.1, 0, 0.9),
    users: Math.round(value("SOAK_USERS", 20, 2, 10_000)),
    probeMs: value("SOAK_PROBE_MS", 100, 10),
  };
}

/** One line per setting, with the variable that changes it. */
function describe(s: SoakSettings): string {
  return [
    `mode: one process, memory bus, ${s.mode === "postgres" ? "PostgreSQL (throwaway cluster)" : "PGlite in a temp dir"} (SOAK_MODE or --postgres / --pglite)`,
    `load: ${s.rate} orders/s open loop for ${s.seconds} s (SOAK_RATE, SOAK_SECONDS), over ${s.users} users (SOAK_USERS)`,
    `  ${pct(s.keyShare)} with a fresh Idempotency-Key (SOAK_KEY_SHARE), ${pct(s.rejectShare)} from users without a wallet, rejected (SOAK_REJECT_SHARE)`,
    `retention: every window ${s.retentionSeconds} s (SOAK_RETENTION_SECONDS): inbox, published outbox, dead letters, rejected orders, idempotency keys`,
    `sample every ${s.sampleSeconds} s (SOAK_SAMPLE_SECONDS); latency probe every ${s.probeMs} ms (SOAK_PROBE_MS)`,
  ].join("\n");
}

const pct = (share: number) => `${Math.round(share * 100)}%`;

/** `<MODULE>_<KEY>` overrides putting every retention window at `seconds`, in the units each key takes. */
function retentionEnv(seconds: number): Record<string, string> {
  const hours = String(seconds / 3600);
  const days = String(seconds / 86_400);
  const env: Record<string, string> = { REGISTRY_IDEMPOTENCY_KEY_RETENTION_HOURS: hours };
  for (const m of ["REGISTRY", "WALLET", "STORAGE"]) {
    env[`${m}_INBOX_RETENTION_HOURS`] = hours;
    env[`${m}_OUTBOX_RETENTION_HOURS`] = hours;
    env[`${m}_DEAD_LETTER_RETENTION_DAYS`] = days;
    env[`${m}_UNRESOLVED_DEAD_LETTER_RETENTION_DAYS`] = days;
  }
  return env;
}

/**
 * The shop under soak: its process, and how to count its tables while it runs (PostgreSQL), or
 * on PGlite the size on disk of the pruned tables while it runs and their rows after it stopped.
 */
interface SoakShop {
  shop: RunningShop;
  pid: number;
  counter: Counter | null;
  pglite: { dataDir: string; prunedMb: () => number } | null;
}

/** Starts the database and the shop with the shortened retention windows; undo is registered. */
async function startSoakShop(s: SoakSettings): Promise<SoakShop> {
  const cluster = s.mode === "postgres" ? await startPostgresCluster({ name: `soak-${process.pid}` }) : null;
  if (cluster) defer("stop the PostgreSQL cluster", () => cluster.stop());
  const topology = await prepareTopology(s.mode, cluster, readSettings({}));
  const specs = topology.specs.map((spec) => ({ ...spec, env: { ...spec.env, ...retentionEnv(s.retentionSeconds) } }));
  const spec = specs[0];
  if (!spec) throw new Error("no shop process to start");
  const dataDir = spec.env.DATA_DIR;
  let pglite: SoakShop["pglite"] = null;
  if (dataDir) {
    // A first start makes the tables; where their files are is read while no process holds the directory.
    await (await launch(specs)).stop();
    const paths = (await queryPglite(dataDir, PRUNED_FILES_QUERY)).map((row) => String(row.path));
    pglite = { dataDir, prunedMb: () => relationFilesMb(dataDir, paths) };
  }
  const shop = await launch(specs);
  defer("stop the shop", () => shop.stop());
  const pid = shop.pids[spec.name] as number;
  console.error(`[soak] shop healthy after ${shop.startMs.toFixed(0)} ms, pid ${pid}`);
  const url = spec.env.DATABASE_URL;
  if (!url) return { shop, pid, counter: null, pglite };
  const client = postgres(url, { max: 1, onnotice: () => {} });
  defer("close the counting connection", () => client.end({ timeout: 5 }));
  return { shop, pid, counter: counterFor((text) => client.unsafe(text)), pglite: null };
}

/** Runs one query on a PGlite data directory no process has open. */
async function queryPglite(dataDir: string, text: string): Promise<Record<string, unknown>[]> {
  const db = await PGlite.create(dataDir, PGLITE_OPTIONS);
  try {
    return (await db.query<Record<string, unknown>>(text)).rows;
  } finally {
    await db.close();
  }
}

/** What a run gave: the samples, the orders' fate, the probe's failures and the shop's warnings. */
interface SoakRun {
  samples: Sample[];
  phase: PhaseResult;
  probeErrors: number;
  probed: string;
  warnings: string[];
}

/** Posts orders at the set rate while sampling every `sampleSeconds`, then waits for the orders to be final. */
async function soak(s: SoakSettings, { shop, pid, counter, pglite }: SoakShop): Promise<SoakRun> {
  const users = benchUsers(s.users);
  // The first users get no money: their orders are rejected (unknown_wallet).
  await stockUp(shop.urls, users.slice(Math.round(users.length * s.rejectShare)));
  const runId = crypto.randomUUID().slice(0, 8);
  const keyed = (i: number) => Math.floor((i + 1) * s.keyShare) > Math.floor(i * s.keyShare);
  const headersFor = (i: number): Record<string, string> => (keyed(i) ? { "Idempotency-Key": `soak-${runId}-${i}` } : {});
  const prober = new Prober(await probeUrl(shop.urls.registry), s.probeMs);
  prober.start();
  defer("stop the latency probe", () => prober.stop());
  const tracker = new OrderTracker(shop.urls.registry, TRACKER_ROUND_MS, 20);
  tracker.start();
  defer("stop the order poller", () => tracker.stop());
  const probed = prober.url.slice(shop.urls.registry.length);
  console.error(`[soak] ${s.rate} orders/s for ${s.seconds} s; probing GET ${probed}`);

  const samples: Sample[] = [];
  const loadStart = performance.now();
  const posting = postAtRate(shop.urls, tracker, shop.pids, users, s.rate, s.seconds, headersFor);
  let cpuBefore = cpuSnapshot({ shop: pid });
  let machineBefore = machineSnapshot();
  for (let k = 1; k * s.sampleSeconds <= s.seconds + 1e-9; k++) {
    await Bun.sleep(Math.max(0, loadStart + k * s.sampleSeconds * 1000 - performance.now()));
    const t = (performance.now() - loadStart) / 1000;
    const latency = prober.take();
    const cpu = cpuSince(cpuBefore, { shop: pid }).shop ?? Number.NaN;
    const machine = machineSince(machineBefore);
    cpuBefore = cpuSnapshot({ shop: pid });
    machineBefore = machineSnapshot();
    const counts = counter ? await counter() : pglite ? { "pruned MB": pglite.prunedMb() } : {};
    const previous = samples.at(-1);
    const figures: Record<string, number> = {
      "orders/s": ((counts.orders ?? Number.NaN) - (previous?.figures.orders ?? 0)) / (t - (previous?.t ?? 0)),
      "CPU %": cpu,
      "machine %": machine,
      "RSS MB": rssMb(pid),
      "probe p50 ms": latency.p50,
      "probe p99 ms": latency.p99,
      "probe max ms": latency.max,
      ...counts,
    };
    samples.push({ t, figures });
    const line = Object.entries(figures)
      .filter(([, v]) => Number.isFinite(v))
      .map(([name, v]) => `${name} ${fmt(name, v)}`);
    console.error(`[soak] t=${t.toFixed(0)} s: ${line.join(", ")}`);
  }
  const run = await posting;
  const left = await tracker.drain(DRAIN_MS);
  if (left > 0) console.error(`[soak] ${left} orders still pending ${DRAIN_MS / 1000} s after the load stopped`);
  await tracker.stop();
  await prober.stop();
  return { samples, phase: summarise(run, tracker), probeErrors: prober.errors, probed, warnings: shop.warnings() };
}

const TRACKER_ROUND_MS = 250;
const DRAIN_MS = 60_000;

/** Prints the settings, the table of samples, the verdicts and the orders' fate (stdout). */
function report(s: SoakSettings, r: SoakRun, finalCounts: Record<string, number> | null, loadBefore: number): void {
  const columns = [...new Set(r.samples.flatMap((x) => Object.keys(x.figures)))].filter((c) =>
    r.samples.some((x) => Number.isFinite(x.figures[c])),
  );
  const rows = r.samples.map((x) => [x.t.toFixed(0), ...columns.map((c) => fmt(c, x.figures[c] ?? Number.NaN))]);
  const judged = columns.filter((c) => c !== "orders/s").map((c) => judge(r.samples, s.seconds, c));
  console.log(`\nsoak settings:\n${describe(s)}`);
  console.log(
    `machine: ${cpus().length} cores (${cpus()[0]?.model ?? "?"}), bun ${Bun.version}; 1-minute load average before: ${loadBefore.toFixed(1)}\n`,
  );
  console.log(renderTable([["t s", ...columns], ...rows]));
  console.log(
    `\nprobe: GET ${r.probed} every ${s.probeMs} ms, latency in ms over each sample's window (the event loop's lag as a client sees it; ${r.probeErrors} failed)` +
      "\nCPU %: of one core, the shop process; machine %: the whole machine busy, of one core (other work competes); RSS MB: its resident memory at the sample" +
      (finalCounts
        ? "\npruned MB: the files on disk of the pruned tables with their indexes"
        : "\ncounts: rows per table (r registry, w wallet, s storage); keys: idempotency_keys; dead: dead letters of all three; pruned MB: the pruned tables with their indexes"),
  );
  if (finalCounts) {
    const counted = COUNTED.map((c) => [c.column, fmt(c.column, finalCounts[c.column] ?? Number.NaN)]);
    console.log(
      `\nPGlite tables after the shop stopped (nothing else can open its data directory while it runs):\n${renderTable([["table", "rows"], ...counted])}`,
    );
  }
  console.log(
    "\nlevelling off: the max of the last third of the run against the max of the middle third, levelled if within the limit" +
      "\n(middle max x 1.1 + 10 rows or 2 MB for sizes and RSS; x 1.5 + 5 ms, 5 points or 50 orders for the noisy latency, CPU and pending)" +
      `\n${renderTable([["series", "middle max", "last max", "ratio", "limit", ""], ...judged])}`,
  );
  const p = r.phase;
  const rejected =
    Object.entries(p.rejected)
      .map(([reason, n]) => `${reason} ${n}`)
      .join(", ") || "none";
  const failures =
    Object.entries(p.failures)
      .map(([status, n]) => `${status} ${n}`)
      .join(", ") || "none";
  console.log(
    `\norders: ${p.accepted} accepted (${num(p.acceptedPerSecond)}/s), POST to final p50 ${num(p.p50)} ms, p99 ${num(p.p99)} ms (poller every ${TRACKER_ROUND_MS} ms); ` +
      `rejected: ${rejected}; refused POSTs: ${failures}; not final ${DRAIN_MS / 1000} s after the load: ${p.stuck}`,
  );
  const peakRss = Math.max(...r.samples.map((x) => x.figures["RSS MB"] ?? 0));
  console.log(`peak RSS of the samples: ${num(peakRss)} MB; shop warnings: ${r.warnings.length}`);
  for (const w of r.warnings.slice(0, 5)) console.log(`  ${w.slice(0, 300)}`);
}

const started = performance.now();
const loadBefore = loadavg()[0] ?? 0;
installSignalHandlers();
let exitCode = 0;
try {
  const s = readSoakSettings(Bun.argv.slice(2), process.env);
  console.error(`soak settings:\n${describe(s)}\n`);
  const target = await startSoakShop(s);
  const run = await soak(s, target);
  await target.shop.stop();
  const { pglite } = target;
  const finalCounts = pglite ? await counterFor((text) => queryPglite(pglite.dataDir, text))() : null;
  report(s, run, finalCounts, loadBefore);
  console.log(`\nsoak took ${((performance.now() - started) / 60_000).toFixed(1)} min`);
} catch (err) {
  console.error(`soak failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  exitCode = 1;
} finally {
  await cleanUp();
}
process.exit(exitCode);
