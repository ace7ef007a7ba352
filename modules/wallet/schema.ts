/** Wallet's tables, in the `wallet` schema. */
import { sql } from "drizzle-orm";
import { bigint, bigserial, check, index, integer, pgSchema, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";
import { idempotencyKeysTable } from "../../src/idempotency";
import { messagingTables } from "../../src/messaging/tables";
import { rejectedOrdersTable } from "../../src/saga/rejections";

export const walletSchema = pgSchema("wallet");

/** One balance per user, in cents; never negative. */
export const wallets = walletSchema.table(
  "wallets",
  {
    userId: integer("user_id").primaryKey(),
    balanceCents: bigint("balance_cents", { mode: "number" }).notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [check("balance_non_negative", sql`${t.balanceCents} >= 0`)],
);

export const LEDGER_KINDS = ["deposit", "debit", "refund"] as const;

/** Every balance movement; at most one debit and one refund per order. */
export const ledger = walletSchema.table(
  "ledger",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    userId: integer("user_id").notNull(),
    orderId: uuid("order_id"),
    kind: text("kind", { enum: LEDGER_KINDS }).notNull(),
    amountCents: bigint("amount_cents", { mode: "number" }).notNull(),
    balanceAfterCents: bigint("balance_after_cents", { mode: "number" }).notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("ledger_order_kind").on(t.orderId, t.kind),
    index("ledger_user").on(t.userId, t.id),
    check("amount_positive", sql`${t.amountCents} >= 0`),
  ],
);

/** `Idempotency-Key`s of deposits: the same key and body replay the first answer. */
export const idempotencyKeys = idempotencyKeysTable(walletSchema);

/** Orders known to be rejected: a late OrderCreated for them is ignored. */
export const rejectedOrders = rejectedOrdersTable(walletSchema);

export const { outbox, inbox, deadLetters } = messagingTables(walletSchema);
