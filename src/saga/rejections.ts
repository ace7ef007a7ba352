/**
 * A participant's memory of rejected orders. Messages on different topics arrive in any order,
 * so a rejection heard before its OrderCreated must make that late creation a no-op.
 */
import { index, type PgSchema, text, timestamp, uuid } from "drizzle-orm/pg-core";
import type { OrderRejected } from "../contracts";
import type { Executor } from "../db/database";
import type { PruneJob } from "../db/retention";

/** Declares the `rejected_orders` table inside a participant's schema. */
export const rejectedOrdersTable = (schema: PgSchema) =>
  schema.table(
    "rejected_orders",
    {
      orderId: uuid("order_id").primaryKey(),
      service: text("service").notNull(),
      reason: text("reason").notNull(),
      createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    },
    // Pruned by age, like the inbox.
    (t) => [index().on(t.createdAt)],
  );

/** One participant's rejected-orders table. */
export type RejectedOrdersTable = ReturnType<typeof rejectedOrdersTable>;

/** Remembers a rejection; true the first time, false if the order was already known as rejected. */
export async function rememberRejection(tx: Executor, table: RejectedOrdersTable, r: OrderRejected): Promise<boolean> {
  const inserted = await tx
    .insert(table)
    .values({ orderId: r.order_id, service: r.service, reason: r.reason })
    .onConflictDoNothing()
    .returning({ id: table.orderId });
  return inserted.length > 0;
}

/**
 * The pruning job for a participant's remembered rejections, run by its module's retention timer.
 * A late OrderCreated must still find the rejection: a row is kept as long as the inbox keeps a
 * delivered message's id (`inbox_retention_hours`), as long as a redelivery can come.
 */
export const rejectedOrdersPruneJob = (table: RejectedOrdersTable, inboxRetentionHours: number): PruneJob => ({
  name: "rejected_orders",
  table,
  key: table.orderId,
  at: table.createdAt,
  olderThanMs: inboxRetentionHours * 3_600_000,
});
