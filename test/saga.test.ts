/** The saga suite against each topology: one process (PGlite, PostgreSQL) and three processes over Kafka. */
import { afterAll } from "bun:test";
import { describeSaga } from "./saga.suite";
import { type PostgresCluster, startPostgresCluster } from "./support/postgres-cluster";
import { createDatabase, startInProcess } from "./support/shop-target";
import { startSplitShop } from "./support/split-shop";

let cluster: PostgresCluster | null = null;
afterAll(async () => {
  await cluster?.stop();
});

describeSaga("one process, memory bus, PGlite", () => startInProcess());

describeSaga("one process, memory bus, PostgreSQL", async () => {
  cluster ??= await startPostgresCluster({ name: "saga" });
  return startInProcess({ DATABASE_URL: await createDatabase(cluster.url) });
});

describeSaga("three processes, Kafka, PostgreSQL", () => startSplitShop(), { timeoutMs: 180_000 });
