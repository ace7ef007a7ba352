/** Storage's tables, in the `storage` schema. */
import { sql } from "drizzle-orm";
import { bigserial, check, index, integer, pgSchema, primaryKey, text, timestamp, uuid } from "drizzle-orm/pg-core";
import { idempotencyKeysTable } from "../../src/idempotency";
import { messagingTables } from "../../src/messaging/tables";
import { rejectedOrdersTable } from "../../src/saga/rejections";

export const storageSchema = pgSchema("storage");

/** Units per product: free to sell (`available`) and held by orders (`reserved`). */
export const stock = storageSchema.table(
  "stock",
  {
    productId: integer("product_id").primaryKey(),
    available: integer("available").notNull(),
    reserved: integer("reserved").notNull().default(0),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [check("available_non_negative", sql`${t.available} >= 0`), check("reserved_non_negative", sql`${t.reserved} >= 0`)],
);

export const RESERVATION_STATES = ["reserved", "released"] as const;

/** What each order holds; released when the order is rejected. */
export const reservations = storageSchema.table(
  "reservations",
  {
    orderId: uuid("order_id").notNull(),
    productId: integer("product_id").notNull(),
    quantity: integer("quantity").notNull(),
    state: text("state", { enum: RESERVATION_STATES }).notNull().default("reserved"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    releasedAt: timestamp("released_at", { withTimezone: true }),
  },
  (t) => [primaryKey({ columns: [t.orderId, t.productId] }), index("reservations_product").on(t.productId)],
);

/** Goods received into stock. */
export const receipts = storageSchema.table("receipts", {
  id: bigserial("id", { mode: "number" }).primaryKey(),
  productId: integer("product_id").notNull(),
  quantity: integer("quantity").notNull(),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
});

/** `Idempotency-Key`s of stock receipts: the same key and body replay the first answer. */
export const idempotencyKeys = idempotencyKeysTable(storageSchema);

/** Orders known to be rejected: a late OrderCreated for them is ignored. */
export const rejectedOrders = rejectedOrdersTable(storageSchema);

export const { outbox, inbox, deadLetters } = messagingTables(storageSchema);
