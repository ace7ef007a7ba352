/** Everything registry reacts to on the bus. */
import type { Consumers } from "../../src/outbox/message-consumer";
import { asc, inArray } from "drizzle-orm";
import { orders } from "./schema";
import { recordCompensation, recordRejection, recordSuccess, type SagaEnded } from "./service";

/** Registry's consumer: follow each order's steps, rejections and compensations; `ended` hears of each final state. */
export const registryConsumers = (ended?: SagaEnded): Consumers => ({
  handlers: {
    StepSucceeded: (tx, m) => recordSuccess(tx, m.payload, ended),
    OrderRejected: (tx, m, enqueue) => recordRejection(tx, enqueue, m.payload, ended),
    OrderCompensated: (tx, m) => recordCompensation(tx, m.payload),
  },
  // The batch's orders, in id order.
  lockRows: async (tx, messages) => {
    const ids = [...new Set(messages.map((m) => m.order_id))];
    await tx.select({ id: orders.id }).from(orders).where(inArray(orders.id, ids)).orderBy(asc(orders.id)).for("update");
  },
});

/** The topics registry's consumer group reads. */
export const REGISTRY_TOPICS = ["success", "rejected_orders"] as const;
