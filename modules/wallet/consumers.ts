/** Everything wallet reacts to on the bus. */
import { and, asc, eq, inArray, or } from "drizzle-orm";
import type { Consumers } from "../../src/messaging/message-consumer";
import { compensation } from "../../src/tracing/spans";
import { ledger, wallets } from "./schema";
import { debitOrder, debitOrders, refundOrder } from "./service";

/** Wallet's consumer: debit new orders, refund orders registry rejected. */
export const walletConsumers: Consumers = {
  handlers: {
    OrderCreated: (tx, m, enqueue) => debitOrder(tx, enqueue, m.payload),
    OrderRejected: async (tx, m, enqueue) => {
      // Registry decides an order's fate: undo only on its word (a participant's own rejection reaches us through it).
      if (m.payload.service === "registry") await compensation("refund order", m.order_id, () => refundOrder(tx, enqueue, m.payload));
    },
  },
  batchHandlers: {
    OrderCreated: (tx, ms, enqueue) =>
      debitOrders(
        tx,
        enqueue,
        ms.map((m) => ({ order: m.payload, cause: m })),
      ),
  },
  // The wallets of the orders to debit and of the debits to refund, in user order. A batch of
  // OrderCreated alone locks nothing here: debitOrders reads its wallets locked, in user order.
  lockRows: async (tx, messages) => {
    if (messages.every((m) => m.type === "OrderCreated")) return;
    const users = messages.flatMap((m) => (m.type === "OrderCreated" ? [m.payload.user_id] : []));
    const refunds = messages.flatMap((m) => (m.type === "OrderRejected" ? [m.order_id] : []));
    const debitors = tx
      .select({ id: ledger.userId })
      .from(ledger)
      .where(and(inArray(ledger.orderId, refunds), eq(ledger.kind, "debit")));
    const conditions = [
      ...(users.length ? [inArray(wallets.userId, users)] : []),
      ...(refunds.length ? [inArray(wallets.userId, debitors)] : []),
    ];
    if (conditions.length === 0) return;
    await tx
      .select({ id: wallets.userId })
      .from(wallets)
      .where(or(...conditions))
      .orderBy(asc(wallets.userId))
      .for("update");
  },
};

/** The topics wallet's consumer group reads. */
export const WALLET_TOPICS = ["new_orders", "rejected_orders"] as const;
