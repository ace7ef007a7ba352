/** Everything storage reacts to on the bus. */
import type { MessageHandlers } from "../../src/outbox/message-consumer";
import { releaseItems, reserveItems } from "./service";

/** Storage's consumer: reserve new orders' items, release orders another service rejected. */
export const storageConsumers: MessageHandlers = {
  OrderCreated: (tx, m, enqueue) => reserveItems(tx, enqueue, m.payload),
  OrderRejected: async (tx, m) => {
    if (m.payload.service !== "storage") await releaseItems(tx, m.payload);
  },
};

/** The topics storage's consumer group reads. */
export const STORAGE_TOPICS = ["new_orders", "rejected_orders"] as const;
