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
  /** Length of the saturation phase and of the half-rate phase, each (BENCH_SECONDS). */
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
}

/** Reads the settings from `env`, with defaults sized for a ~7 minute run on two cores. */
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
  for (const m of modes) if (!(MODES as readonly string[]).includes(m)) throw new Error(`BENCH_MODES: unknown mode ${m} (${MODES.join(", ")})`);
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
  };
}

/** One line per setting, with the variable that changes it. */
export function describeSettings(s: BenchSettings): string {
  return [
    `modes ${s.modes.join(",")} (BENCH_MODES; known: ${MODES.join(", ")})`,
    `saturation: ${s.clients} clients posting for ${s.seconds} s (BENCH_CLIENTS, BENCH_SECONDS); half rate: open-loop for ${s.seconds} s`,
    `order poller: GET /orders pages, a round at most every ${s.pollMs} ms and at most ${s.pollMaxRps} requests/s (BENCH_POLL_MS, BENCH_POLL_MAX_RPS)`,
    `after each phase: wait up to ${s.drainSeconds} s for every order to be final and the shop's CPU to go back to idle (BENCH_DRAIN_SECONDS)`,
    `idle CPU: ${s.idleSeconds} s window after ${s.idleSettleSeconds} s settle (BENCH_IDLE_SECONDS, BENCH_IDLE_SETTLE_SECONDS)`,
    `wrk: -t${s.wrkThreads} -c${s.wrkConnections} -d${s.wrkSeconds}s (BENCH_WRK_THREADS, BENCH_WRK_CONNECTIONS, BENCH_WRK_SECONDS)`,
    `pgbench: -i -s ${s.pgbenchScale}, then -c ${s.pgbenchClients} -j ${s.pgbenchThreads} -T ${s.pgbenchSeconds} (BENCH_PGBENCH_SCALE, _CLIENTS, _THREADS, _SECONDS)`,
    `kafka: librdkafka mock broker, KAFKA_FETCH_MAX_WAIT_MS=${s.kafkaFetchMaxWaitMs} (BENCH_KAFKA_FETCH_MAX_WAIT_MS)`,
    `CPU profiles: ${s.profileDir ? `bun --cpu-prof-md into ${s.profileDir}` : "off"} (BENCH_PROFILE_DIR; profiling slows the shop, so its figures are not comparable)`,
  ].join("\n");
}
