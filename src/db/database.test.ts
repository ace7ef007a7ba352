import { afterAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { type PostgresCluster, startPostgresCluster } from "../../test/support/postgres-cluster";
import { createLogger } from "../log";
import { openDatabase } from "./database";
import { rowsOf } from "./rows";

const log = createLogger("silent");

let cluster: PostgresCluster | null = null;
afterAll(async () => {
  await cluster?.stop();
});

describe("driver differences kept inside Database", () => {
  test("PostgreSQL: every statement is prepared, in and out of transactions and savepoints (drizzle asks only for named ones)", async () => {
    cluster = await startPostgresCluster({ name: "database-prepare" });
    // One connection: the statements below and the read of pg_prepared_statements share its session.
    const db = await openDatabase({ driver: "postgres", url: cluster.url, poolSize: 1 }, log);
    try {
      await db.read((q) => q.execute(sql`select ${1}::int as outside_marker`));
      await db.transaction((tx) => tx.execute(sql`select ${2}::int as transaction_marker`));
      await db.transaction((tx) => tx.transaction((sp) => sp.execute(sql`select ${3}::int as savepoint_marker`)));
      const rows = await db.read((q) => q.execute(sql`select statement from pg_prepared_statements where statement like ${"%_marker%"}`));
      const prepared = rowsOf(rows).map((r) => String(r.statement).match(/as (\w+_marker)/)?.[1]);
      expect(prepared.sort()).toEqual(["outside_marker", "savepoint_marker", "transaction_marker"]);
    } finally {
      await db.close();
    }
  });

  test("PGlite: dates and intervals come back as drizzle's text, in and out of transactions", async () => {
    const db = await openDatabase({ driver: "pglite", dataDir: null }, log);
    try {
      const query = sql`select timestamptz '2026-01-02 03:04:05+00' as at, interval '1 day' as span, date '2026-01-02' as day`;
      const outside = await db.read((q) => q.execute(query));
      const inside = await db.transaction((tx) => tx.execute(query));
      for (const rows of [outside, inside]) {
        expect(rowsOf(rows)[0]).toEqual({ at: "2026-01-02 03:04:05+00", span: "1 day", day: "2026-01-02" });
      }
    } finally {
      await db.close();
    }
  });
});
