/** Everything wallet reacts to on the bus. */
import type { MessageHandlers } from "../../src/outbox/message-consumer";
import { debitOrder, refundOrder } from "./service";

/** Wallet's consumer: debit new orders, refund orders another service rejected. */
export const walletConsumers: MessageHandlers = {
  OrderCreated: (tx, m, enqueue) => debitOrder(tx, enqueue, m.payload),
  OrderRejected: async (tx, m) => {
    if (m.payload.service !== "wallet") await refundOrder(tx, m.payload);
  },
};

/** The topics wallet's consumer group reads. */
export const WALLET_TOPICS = ["new_orders", "rejected_orders"] as const;
