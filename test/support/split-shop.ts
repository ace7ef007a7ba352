/** The split deployment without Docker: a Kafka-protocol broker, PostgreSQL and three `bun` processes. */
import { Kafka, logLevel, Partitioners } from "kafkajs";
import { TEST_ADMIN_TOKEN } from "./http";
import { type KafkaMock, startKafkaMock } from "./kafka-mock";
import { type PostgresCluster, startPostgresCluster } from "./postgres-cluster";
import { type ShopProcess, startShopProcess } from "./process";
import { createDatabase, FIXTURE_CONFIG, type ShopTarget, signedHeaders, TEST_BUS_SIGNING_KEY, TOPICS } from "./shop-target";

/** Kafka settings for librdkafka's mock broker. */
export const MOCK_KAFKA_SETTINGS = {
  KAFKA_SESSION_TIMEOUT_MS: "6000", // a restarted member rejoins quickly
  // The mock holds every fetch for the full wait, even once records arrive (a real broker
  // answers at once), so a short wait keeps the saga quick here.
  KAFKA_FETCH_MAX_WAIT_MS: "200",
  // kafkajs's workarounds for the mock (patches/kafkajs@2.2.4.patch): groups of several, full fetches.
  KAFKA_MOCK_BROKER_QUIRKS: "true",
};

/** A running split topology. */
export interface SplitShop extends ShopTarget {
  brokers: string;
  /** The broker, to take it down and up again. */
  kafka: KafkaMock;
  databaseUrl: string;
  /** The PostgreSQL cluster, to take it down and up again. */
  postgres: PostgresCluster;
  processes: Record<"registry" | "wallet" | "storage", ShopProcess>;
  /** Environment the service processes run with (to start one again). */
  env: Record<string, string>;
  /** Extra processes of a module started with startReplica (stopped with the shop). */
  replicas: ShopProcess[];
}

/** Starts broker, database and registry/wallet/storage as separate processes over Kafka. */
export async function startSplitShop(extraEnv: Record<string, string> = {}): Promise<SplitShop> {
  const mock: KafkaMock = await startKafkaMock(Object.values(TOPICS).map((t) => `${t}:3`));
  let cluster: PostgresCluster | null = null;
  const started: ShopProcess[] = [];
  try {
    cluster = await startPostgresCluster({ name: "split" });
    const databaseUrl = await createDatabase(cluster.url);
    const env = {
      BUS: "kafka",
      KAFKA_BROKERS: mock.brokers,
      DATABASE_URL: databaseUrl,
      CONFIG_DIR: FIXTURE_CONFIG,
      HOST: "127.0.0.1",
      REGISTRY_PORT: "0",
      WALLET_PORT: "0",
      STORAGE_PORT: "0",
      LOG_LEVEL: "info", // the harness reads the "listening" lines
      ADMIN_TOKEN: TEST_ADMIN_TOKEN,
      BUS_SIGNING_KEY: TEST_BUS_SIGNING_KEY,
      ...MOCK_KAFKA_SETTINGS,
      ...extraEnv,
    };
    const names = ["registry", "wallet", "storage"] as const;
    const procs = await Promise.all(names.map((m) => startShopProcess(["--modules", m], env, 1)));
    started.push(...procs);
    const [registry, wallet, storage] = procs as [ShopProcess, ShopProcess, ShopProcess];
    const kafka = new Kafka({ clientId: "test-producer", brokers: [mock.brokers], logLevel: logLevel.NOTHING });
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    const pg = cluster;
    const processes = { registry, wallet, storage };
    const replicas: ShopProcess[] = [];
    return {
      brokers: mock.brokers,
      kafka: mock,
      databaseUrl,
      postgres: pg,
      processes,
      replicas,
      env,
      urls: { registry: registry.urls.registry ?? "", wallet: wallet.urls.wallet ?? "", storage: storage.urls.storage ?? "" },
      topics: TOPICS,
      publish: async (topic, key, value) => {
        await producer.send({
          topic,
          acks: -1,
          messages: [{ key, value, headers: signedHeaders(env.BUS_SIGNING_KEY, topic, key, value) }],
        });
      },
      publishUnsigned: async (topic, key, value, headers = {}) => {
        await producer.send({ topic, acks: -1, messages: [{ key, value, headers }] });
      },
      async stop() {
        await producer.disconnect();
        // Read at stop time: a test may have replaced a process with a restarted one.
        await Promise.all([...Object.values(processes), ...replicas].map((p) => p.stop("SIGTERM")));
        await mock.stop();
        await pg.stop();
      },
    };
  } catch (err) {
    for (const p of started) p.proc.kill("SIGKILL");
    await mock.stop();
    await cluster?.stop();
    throw err;
  }
}

/** One of the split shop's service processes. */
export type SplitService = keyof SplitShop["processes"];

/**
 * Starts `name` again on its port with the shop's environment plus `env` (after its process was
 * stopped or killed), and puts the new process in place of the old one.
 */
export async function startService(shop: SplitShop, name: SplitService, env: Record<string, string> = {}): Promise<ShopProcess> {
  const port = new URL(shop.urls[name]).port;
  const proc = await startShopProcess(["--modules", name], { ...shop.env, [`${name.toUpperCase()}_PORT`]: port, ...env }, 1);
  shop.processes[name] = proc;
  return proc;
}

/** Stops `name` with `signal` and starts it again (see startService). */
export async function restartService(
  shop: SplitShop,
  name: SplitService,
  opts: { signal?: NodeJS.Signals; env?: Record<string, string> } = {},
): Promise<ShopProcess> {
  await shop.processes[name].stop(opts.signal ?? "SIGTERM");
  return startService(shop, name, opts.env);
}

/**
 * Starts one more process of module `name` on a free HTTP port, with the shop's environment plus
 * `env`: same PostgreSQL, same broker, same consumer group as the first one. Resolves once it
 * listens and, unless `waitReady` is false, once it is ready (its consumer groups joined, which
 * takes the other members through a rebalance). The shop stops it with the others.
 */
export async function startReplica(
  shop: SplitShop,
  name: SplitService,
  env: Record<string, string> = {},
  opts: { waitReady?: boolean } = {},
): Promise<ShopProcess> {
  const proc = await startShopProcess(["--modules", name], { ...shop.env, [`${name.toUpperCase()}_PORT`]: "0", ...env }, 1, 60_000, {
    waitReady: opts.waitReady,
  });
  shop.replicas.push(proc);
  return proc;
}
