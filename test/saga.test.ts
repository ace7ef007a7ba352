/**
 * The saga suite against each topology: one process (memory bus or Kafka; PGlite or PostgreSQL)
 * and three processes over Kafka. The cases no topology changes run on the first one only.
 */
import { afterAll } from "bun:test";
import { describeSaga } from "./saga.suite";
import { type KafkaMock, startKafkaMock } from "./support/kafka-mock";
import { type PostgresCluster, startPostgresCluster } from "./support/postgres-cluster";
import { createDatabase, startInProcess, TOPICS } from "./support/shop-target";
import { MOCK_KAFKA_SETTINGS, startSplitShop } from "./support/split-shop";

let cluster: PostgresCluster | null = null;
let broker: KafkaMock | null = null;
afterAll(async () => {
  await cluster?.stop();
  await broker?.stop();
});

describeSaga("one process, memory bus, PGlite", () => startInProcess(), { topologyFree: true });

describeSaga("one process, memory bus, PostgreSQL", async () => {
  cluster ??= await startPostgresCluster({ name: "saga" });
  return startInProcess({ DATABASE_URL: await createDatabase(cluster.url) });
});

describeSaga("one process, Kafka, PGlite", async () => {
  broker ??= await startKafkaMock(Object.values(TOPICS).map((t) => `${t}:3`));
  return startInProcess({ BUS: "kafka", KAFKA_BROKERS: broker.brokers, ...MOCK_KAFKA_SETTINGS });
});

describeSaga("three processes, Kafka, PostgreSQL", () => startSplitShop(), { timeoutMs: 180_000 });
