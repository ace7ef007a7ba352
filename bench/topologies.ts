/** The shop topologies under test, as process specs over fresh data. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startKafkaMock } from "../test/support/kafka-mock";
import type { PostgresCluster } from "../test/support/postgres-cluster";
import { createDatabase, processEnv, TOPICS } from "../test/support/shop-target";
import { MOCK_KAFKA_SETTINGS } from "../test/support/split-shop";
import { defer } from "./cleanup";
import type { ProcessSpec } from "./launch";
import { findChild, type Pids } from "./proc-stats";
import type { BenchSettings, Mode } from "./settings";
import { type SpanCounter, startSpanCounter } from "./span-counter";

/** Column headings, per mode. */
export const MODE_LABELS: Record<Mode, string> = {
  pglite: "1 process, PGlite",
  "pglite-no-fsync": "1 process, PGlite without fsync (unsafe)",
  postgres: "1 process, PostgreSQL",
  "postgres-traced": "1 process, PostgreSQL, traced (100%)",
  kafka: "3 processes, Kafka",
  "kafka-2x": "5 processes, Kafka (wallet ×2, storage ×2)",
};

/** The tracing-off topology each traced one is compared with in the notes. */
export const UNTRACED: Partial<Record<Mode, Mode>> = { "postgres-traced": "postgres" };

/** Environment shared by every shop process: fixture catalogue, loopback, any free port. */
const BASE_ENV: Record<string, string> = processEnv({
  // The shipped config's safety-net poll (config/*.yaml), not the test fixtures' 1 s.
  REGISTRY_OUTBOX_POLL_MS: "10000",
  WALLET_OUTBOX_POLL_MS: "10000",
  STORAGE_OUTBOX_POLL_MS: "10000",
  // BENCH_SHOP_<NAME>=value sets <NAME> for the shop processes (e.g. BENCH_SHOP_BUS_LINGER_MS=10).
  ...Object.fromEntries(
    Object.entries(process.env).flatMap(([k, v]) =>
      k.startsWith("BENCH_SHOP_") && v !== undefined ? [[k.slice("BENCH_SHOP_".length), v]] : [],
    ),
  ),
});

/**
 * A topology ready to launch: its shop processes, the pids of helpers it runs beside them (the
 * broker), and, when traced, the span counter its processes export to (a collector stands
 * outside the shop, so its CPU is not among the helpers').
 */
export interface Topology {
  specs: ProcessSpec[];
  helpers: Pids;
  spanCounter?: SpanCounter;
}

/** Creates the data (temp dir, database, broker) a mode needs and returns its processes; undo is registered. PGlite needs no cluster. */
export async function prepareTopology(mode: Mode, cluster: PostgresCluster | null, settings: BenchSettings): Promise<Topology> {
  const all = "registry,wallet,storage";
  const clusterUrl = () => {
    if (!cluster) throw new Error(`mode ${mode} needs a PostgreSQL cluster`);
    return cluster.url;
  };
  switch (mode) {
    case "pglite":
    case "pglite-no-fsync": {
      const dir = mkdtempSync(join(tmpdir(), "bench-pglite-"));
      defer(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
      const env = { ...BASE_ENV, DATA_DIR: join(dir, "data"), ...(mode === "pglite-no-fsync" ? { PGLITE_UNSAFE_NO_FSYNC: "true" } : {}) };
      return { specs: [{ name: "shop", args: ["--modules", all], env, modules: 3 }], helpers: {} };
    }
    case "postgres": {
      const url = await createDatabase(clusterUrl());
      return { specs: [{ name: "shop", args: ["--modules", all], env: { ...BASE_ENV, DATABASE_URL: url }, modules: 3 }], helpers: {} };
    }
    case "postgres-traced": {
      const spanCounter = await startSpanCounter();
      const env = {
        ...BASE_ENV,
        DATABASE_URL: await createDatabase(clusterUrl()),
        OTEL_EXPORTER_OTLP_ENDPOINT: spanCounter.url,
        OTEL_TRACES_SAMPLER: "parentbased_always_on",
      };
      return { specs: [{ name: "shop", args: ["--modules", all], env, modules: 3 }], helpers: {}, spanCounter };
    }
    case "kafka":
    case "kafka-2x": {
      const mock = await startKafkaMock(Object.values(TOPICS).map((t) => `${t}:3`));
      defer("stop the Kafka mock broker", () => mock.stop());
      const env = {
        ...BASE_ENV,
        ...MOCK_KAFKA_SETTINGS,
        BUS: "kafka",
        KAFKA_BROKERS: mock.brokers,
        KAFKA_FETCH_MAX_WAIT_MS: String(settings.kafkaFetchMaxWaitMs),
        DATABASE_URL: await createDatabase(clusterUrl()),
      };
      const specs: ProcessSpec[] = (["registry", "wallet", "storage"] as const).map((m) => ({
        name: m,
        args: ["--modules", m],
        env,
        modules: 1,
      }));
      // Two processes of each participant: one consumer group of two members each (the topics'
      // 3 partitions split 2 + 1), one outbox relay leading per module. The load goes through the
      // one registry; wallet's and storage's URLs (stocking up) are either process's.
      if (mode === "kafka-2x")
        for (const m of ["wallet", "storage"] as const) specs.push({ name: `${m}2`, args: ["--modules", m], env, modules: 1 });
      return { specs, helpers: { kafka: findChild(process.pid, "kafka-mock/launcher") } };
    }
  }
}
