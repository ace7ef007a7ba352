/** The saga suite against each topology: one process on PGlite, one process on PostgreSQL. */
import { afterAll } from "bun:test";
import { describeSaga } from "./saga.suite";
import { type PostgresCluster, startPostgresCluster } from "./support/postgres-cluster";
import { createDatabase, startInProcess } from "./support/shop-target";

let cluster: PostgresCluster | null = null;
afterAll(async () => {
  await cluster?.stop();
});

describeSaga("one process, memory bus, PGlite", () => startInProcess());

describeSaga("one process, memory bus, PostgreSQL", async () => {
  cluster ??= await startPostgresCluster({ name: "saga" });
  return startInProcess({ DATABASE_URL: await createDatabase(cluster.url) });
});
