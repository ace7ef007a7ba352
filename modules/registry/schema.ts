/** Registry's tables, in the `registry` schema. */
import { sql } from "drizzle-orm";
import { bigint, bigserial, boolean, check, index, integer, pgSchema, primaryKey, text, timestamp, uuid } from "drizzle-orm/pg-core";
import { idempotencyKeysTable } from "../../src/idempotency";
import { messagingTables } from "../../src/messaging/tables";

export const registrySchema = pgSchema("registry");

/** The catalogue. */
export const products = registrySchema.table(
  "products",
  {
    id: integer("id").primaryKey(),
    sku: text("sku").notNull().unique(),
    name: text("name").notNull(),
    priceCents: bigint("price_cents", { mode: "number" }).notNull(),
  },
  (t) => [check("price_non_negative", sql`${t.priceCents} >= 0`)],
);

export const ORDER_STATUSES = ["pending", "completed", "rejected"] as const;

/** Orders; `seq` gives a stable newest-first order for paging. */
export const orders = registrySchema.table(
  "orders",
  {
    id: uuid("id").primaryKey(),
    seq: bigserial("seq", { mode: "number" }).notNull().unique(),
    userId: integer("user_id").notNull(),
    status: text("status", { enum: ORDER_STATUSES }).notNull().default("pending"),
    reason: text("reason"),
    totalCents: bigint("total_cents", { mode: "number" }).notNull(),
    walletDone: boolean("wallet_done").notNull().default(false),
    storageDone: boolean("storage_done").notNull().default(false),
    /** The participant confirmed it undid its part of a rejected order (or rejected it itself, doing nothing). */
    walletUndone: boolean("wallet_undone").notNull().default(false),
    storageUndone: boolean("storage_undone").notNull().default(false),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
    /** The W3C traceparent of the request that placed the order (tracing on): its decision joins that trace. */
    traceparent: text("traceparent"),
  },
  (t) => [index("orders_user_seq").on(t.userId, t.seq), index("orders_status_created").on(t.status, t.createdAt)],
);

/** An order's lines, priced when the order was placed. */
export const orderItems = registrySchema.table(
  "order_items",
  {
    orderId: uuid("order_id").notNull(),
    productId: integer("product_id").notNull(),
    quantity: integer("quantity").notNull(),
    unitPriceCents: bigint("unit_price_cents", { mode: "number" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.orderId, t.productId] })],
);

/** Each saga step of an order, as registry heard of it. */
export const orderEvents = registrySchema.table(
  "order_events",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    orderId: uuid("order_id").notNull(),
    service: text("service").notNull(),
    step: text("step").notNull(),
    detail: text("detail"),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index("order_events_order").on(t.orderId, t.id)],
);

/**
 * Orders registry never made that a participant acted on (a forged or stray OrderCreated):
 * after a grace period registry rejects them (`unknown_order`) so the participants undo it.
 */
export const unknownOrders = registrySchema.table("unknown_orders", {
  orderId: uuid("order_id").primaryKey(),
  /** The participant whose message revealed it first. */
  service: text("service").notNull(),
  firstSeenAt: timestamp("first_seen_at", { withTimezone: true }).notNull().defaultNow(),
  /** When registry sent its OrderRejected (`unknown_order`); null until then. */
  answeredAt: timestamp("answered_at", { withTimezone: true }),
  /** The trace of the message that revealed it (tracing on): the rejection joins that trace. */
  traceparent: text("traceparent"),
});

/** `Idempotency-Key`s of `POST /orders`: the same key and body replay the original answer; `order_id` is the order placed. */
export const idempotencyKeys = idempotencyKeysTable(registrySchema, { orderId: uuid("order_id") });

export const { outbox, inbox, deadLetters } = messagingTables(registrySchema);
