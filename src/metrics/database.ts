/** The database handle's metrics: its pool and the statements and transactions it ran. */
import { Counter, Gauge } from "prom-client";
import type { Database } from "../db/database";
import type { MetricsRegistry } from "./registry";

/**
 * Gauges of the database handle: `shop_db_pool_max`, `shop_db_pool_in_use`,
 * `shop_db_pool_waiting` (see PoolUse) and the statement and transaction counts.
 */
export function databaseMetrics(registry: MetricsRegistry, db: Database): void {
  const pool = [
    ["max", "Connections the database handle may open (PGlite: 1)", (p) => p.max],
    ["in_use", "Connections busy now (PostgreSQL: units of work in flight, up to max; PGlite: 1 while the mutex is held)", (p) => p.inUse],
    ["waiting", "Units of work waiting for a connection (PostgreSQL: in flight past max; PGlite: queued on the mutex)", (p) => p.waiting],
  ] as const satisfies readonly (readonly [string, string, (p: ReturnType<Database["pool"]>) => number])[];
  for (const [name, help, read] of pool) {
    new Gauge({
      name: `shop_db_pool_${name}`,
      help,
      registers: [registry],
      collect() {
        this.set(read(db.pool()));
      },
    });
  }
  const counts = [
    ["shop_db_statements_total", "Statements sent to the database, BEGIN and COMMIT/ROLLBACK included", () => db.stats.statements],
    ["shop_db_transactions_total", "Transactions run", () => db.stats.transactions],
  ] as const;
  for (const [name, help, read] of counts) {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  }
}
