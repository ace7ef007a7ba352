/** Bench settings, read from environment variables so a run can be made shorter or longer. */
import { resolve } from "node:path";

/**
 * The shop topologies the bench knows; postgres-traced is postgres with tracing on (100% sampled,
 * to a local span counter); pglite-no-fsync is pglite with PGLITE_UNSAFE_NO_FSYNC=true, what
 * durable commits cost beside it.
 */
const MODES = ["pglite", "pglite-no-fsync", "postgres", "postgres-traced", "kafka", "kafka-2x"] as const;
export type Mode = (typeof MODES)[number];
/** Measured when BENCH_MODES is not set; kafka-2x (two wallets, two storages) is opt-in: another ~2 minutes. */
const DEFAULT_MODES: readonly Mode[] = ["pglite", "pglite-no-fsync", "postgres", "postgres-traced", "kafka"];

/** Everything a run is parameterised by. */
export interface BenchSettings {
  /** Which topologies to measure (BENCH_MODES, comma-separated). */
  modes: Mode[];
  /** Length of the saturation phase (BENCH_SECONDS). */
  seconds: number;
  /** Concurrent posting clients at saturation (BENCH_CLIENTS). */
  clients: number;
  /** Longest wait for the last orders of a phase to become final (BENCH_DRAIN_SECONDS). */
  drainSeconds: number;
  /** Shortest time between two rounds of the order poller (BENCH_POLL_MS), and its request-rate cap (BENCH_POLL_MAX_RPS). */
  pollMs: number;
  pollMaxRps: number;
  /** Settle time after start before the idle window (BENCH_IDLE_SETTLE_SECONDS). */
  idleSettleSeconds: number;
  /** Idle CPU window (BENCH_IDLE_SECONDS). */
  idleSeconds: number;
  /** wrk duration per target (BENCH_WRK_SECONDS), threads and connections. */
  wrkSeconds: number;
  wrkThreads: number;
  wrkConnections: number;
  /** pgbench: scale for -i, clients (-c), threads (-j), duration (-T). */
  pgbenchScale: number;
  pgbenchClients: number;
  pgbenchThreads: number;
  pgbenchSeconds: number;
  /** KAFKA_FETCH_MAX_WAIT_MS for the Kafka topologies. */
  kafkaFetchMaxWaitMs: number;
  /** BENCH_PROFILE_DIR: run each shop process under `bun --cpu-prof-md`, profiles written there (null: no profiling). */
  profileDir: string | null;
  /** The cost curve's open-loop rates (BENCH_CURVE_RATES: `10,20,0.5x,0.8x`; `x`: a fraction of the mode's saturation final/s). */
  curveRates: CurveRate[];
  /** Length of each rate of the curve (BENCH_CURVE_SECONDS). */
  curveSeconds: number;
  /** One order at a time: for how long (BENCH_SEQUENTIAL_SECONDS), and the status read's period while waiting (BENCH_SEQUENTIAL_POLL_MS). */
  sequentialSeconds: number;
  sequentialPollMs: number;
  /** Requests per kind when measuring the CPU of one unit of work alone (BENCH_UNIT_REQUESTS). */
  unitRequests: number;
  /** Another checkout measured the same way in the same run, for before/after ratios (BENCH_BASELINE_DIR, or BENCH_BASELINE_REV: a git revision checked out in a temporary worktree). */
  baselineDir: string | null;
  baselineRev: string | null;
  /** A checkout of the public saga issue 23 compares the split deployment with (BENCH_PUBLIC_SAGA_DIR; null: the comparison is skipped, and says so). */
  publicSagaDir: string | null;
}

/** A rate of the curve: so many orders per second, or a fraction of the mode's saturation. */
type CurveRate = { perSecond: number; ofSaturation?: undefined } | { perSecond?: undefined; ofSaturation: number };

/** Parses BENCH_CURVE_RATES. */
function parseRates(raw: string): CurveRate[] {
  const rates = raw
    .split(",")
    .map((r) => r.trim())
    .filter(Boolean)
    .map((r): CurveRate => {
      const value = Number(r.endsWith("x") ? r.slice(0, -1) : r);
      if (!(value > 0)) throw new Error(`BENCH_CURVE_RATES: expected rates like 10 or 0.5x, got ${JSON.stringify(r)}`);
      return r.endsWith("x") ? { ofSaturation: value } : { perSecond: value };
    });
  if (!rates.some((r) => r.ofSaturation === 0.5)) throw new Error("BENCH_CURVE_RATES must include 0.5x (the half rate of the table)");
  return rates;
}

/** Reads the settings from `env`, with defaults sized for a ~12 minute run on two cores (twice that with a baseline). */
export function readSettings(env: Record<string, string | undefined> = process.env): BenchSettings {
  const num = (name: string, fallback: number, min = 0): number => {
    const raw = env[name];
    if (raw === undefined || raw === "") return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < min) throw new Error(`${name}: expected a number >= ${min}, got ${JSON.stringify(raw)}`);
    return value;
  };
  const modes = (env.BENCH_MODES || DEFAULT_MODES.join(","))
    .split(",")
    .map((m) => m.trim())
    .filter(Boolean);
  for (const m of modes)
    if (!(MODES as readonly string[]).includes(m)) throw new Error(`BENCH_MODES: unknown mode ${m} (${MODES.join(", ")})`);
  return {
    modes: modes as Mode[],
    seconds: num("BENCH_SECONDS", 15, 1),
    clients: num("BENCH_CLIENTS", 32, 1),
    drainSeconds: num("BENCH_DRAIN_SECONDS", 60, 1),
    pollMs: num("BENCH_POLL_MS", 20),
    pollMaxRps: num("BENCH_POLL_MAX_RPS", 50, 1),
    idleSettleSeconds: num("BENCH_IDLE_SETTLE_SECONDS", 3),
    idleSeconds: num("BENCH_IDLE_SECONDS", 10, 1),
    wrkSeconds: num("BENCH_WRK_SECONDS", 8, 1),
    wrkThreads: num("BENCH_WRK_THREADS", 2, 1),
    wrkConnections: num("BENCH_WRK_CONNECTIONS", 64, 1),
    pgbenchScale: num("BENCH_PGBENCH_SCALE", 10, 1),
    pgbenchClients: num("BENCH_PGBENCH_CLIENTS", 8, 1),
    pgbenchThreads: num("BENCH_PGBENCH_THREADS", 2, 1),
    pgbenchSeconds: num("BENCH_PGBENCH_SECONDS", 15, 1),
    kafkaFetchMaxWaitMs: num("BENCH_KAFKA_FETCH_MAX_WAIT_MS", 20, 1),
    profileDir: env.BENCH_PROFILE_DIR ? resolve(env.BENCH_PROFILE_DIR) : null,
    curveRates: parseRates(env.BENCH_CURVE_RATES || "10,20,0.5x,0.8x"),
    curveSeconds: num("BENCH_CURVE_SECONDS", 10, 1),
    sequentialSeconds: num("BENCH_SEQUENTIAL_SECONDS", 10, 1),
    sequentialPollMs: num("BENCH_SEQUENTIAL_POLL_MS", 5, 1),
    unitRequests: num("BENCH_UNIT_REQUESTS", 500, 10),
    baselineDir: env.BENCH_BASELINE_DIR ? resolve(env.BENCH_BASELINE_DIR) : null,
    baselineRev: env.BENCH_BASELINE_REV || null,
    publicSagaDir: env.BENCH_PUBLIC_SAGA_DIR ? resolve(env.BENCH_PUBLIC_SAGA_DIR) : null,
  };
}

/** One line per setting, with the variable that changes it. */
export function describeSettings(s: BenchSettings): string {
  return [
    `modes ${s.modes.join(",")} (BENCH_MODES; known: ${MODES.join(", ")})`,
    `saturation: ${s.clients} clients posting for ${s.seconds} s (BENCH_CLIENTS, BENCH_SECONDS); then the cost curve (below)`,
    `order poller: GET /orders pages, a round at most every ${s.pollMs} ms and at most ${s.pollMaxRps} requests/s (BENCH_POLL_MS, BENCH_POLL_MAX_RPS)`,
    `after each phase: wait up to ${s.drainSeconds} s for every order to be final and the shop's CPU to go back to idle (BENCH_DRAIN_SECONDS)`,
    `idle CPU: ${s.idleSeconds} s window after ${s.idleSettleSeconds} s settle (BENCH_IDLE_SECONDS, BENCH_IDLE_SETTLE_SECONDS)`,
    `wrk: -t${s.wrkThreads} -c${s.wrkConnections} -d${s.wrkSeconds}s (BENCH_WRK_THREADS, BENCH_WRK_CONNECTIONS, BENCH_WRK_SECONDS)`,
    `pgbench: -i -s ${s.pgbenchScale}, then -c ${s.pgbenchClients} -j ${s.pgbenchThreads} -T ${s.pgbenchSeconds} (BENCH_PGBENCH_SCALE, _CLIENTS, _THREADS, _SECONDS)`,
    `kafka: librdkafka mock broker, KAFKA_FETCH_MAX_WAIT_MS=${s.kafkaFetchMaxWaitMs} (BENCH_KAFKA_FETCH_MAX_WAIT_MS)`,
    `cost curve: open-loop at ${s.curveRates.map((r) => (r.ofSaturation ? `${r.ofSaturation}x` : String(r.perSecond))).join(", ")} (x: of the mode's saturation) for ${s.curveSeconds} s each (BENCH_CURVE_RATES, BENCH_CURVE_SECONDS)`,
    `one order at a time: ${s.sequentialSeconds} s, a status read every ${s.sequentialPollMs} ms while waiting (BENCH_SEQUENTIAL_SECONDS, BENCH_SEQUENTIAL_POLL_MS)`,
    `unit costs: ${s.unitRequests} requests of each kind, sequential (BENCH_UNIT_REQUESTS)`,
    `baseline: ${s.baselineDir ?? (s.baselineRev ? `git revision ${s.baselineRev} in a temporary worktree` : "none")} (BENCH_BASELINE_DIR or BENCH_BASELINE_REV: the same modes on that checkout, ratios after/before)`,
    `public saga (issue 23's yardstick for the Kafka mode): ${s.publicSagaDir ?? "skipped"} (BENCH_PUBLIC_SAGA_DIR: a checkout of github.com/vikram-chauhan-270192/saga-kafka-demo, run with node after npm ci in a temp dir)`,
    `CPU profiles: ${s.profileDir ? `bun --cpu-prof-md into ${s.profileDir}` : "off"} (BENCH_PROFILE_DIR; profiling slows the shop, so its figures are not comparable)`,
  ].join("\n");
}
