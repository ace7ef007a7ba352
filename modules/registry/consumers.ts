/** Everything registry reacts to on the bus. */

import { asc } from "drizzle-orm";
import { anyOf } from "../../src/db/bulk";
import type { Logger } from "../../src/log";
import type { Consumers } from "../../src/messaging/message-consumer";
import { recordCompensation, recordRejection, recordSuccess, recordSuccesses, type SagaEnded } from "./saga";
import { orders } from "./schema";

/** Registry's consumer: follow each order's steps, rejections and compensations; `ended` hears of each final state, `log` logs it. */
export const registryConsumers = (ended?: SagaEnded, log?: Logger): Consumers => ({
  handlers: {
    StepSucceeded: (tx, m) => recordSuccess(tx, m.payload, decided(m, ended, log)),
    OrderRejected: (tx, m, enqueue) => recordRejection(tx, enqueue, m.payload, decided(m, ended, log, m.payload.reason)),
    OrderCompensated: (tx, m) => recordCompensation(tx, m.payload),
  },
  batchHandlers: {
    StepSucceeded: (tx, ms) =>
      recordSuccesses(
        tx,
        ms.map((m) => ({ step: m.payload, ended: decided(m, ended, log), trace: m })),
      ),
  },
  // The batch's orders, in id order. Every handler changes only its order's row (and appends to
  // its timeline), so the row lock alone makes one order's messages take turns; a message about an
  // order registry never made changes nothing but an insert that ignores conflicts.
  lockRows: async (tx, messages) => {
    // StepSucceeded alone (the usual batch on its topic): recordSuccesses reads its orders locked, in id order.
    if (messages.every((m) => m.type === "StepSucceeded")) return;
    const ids = [...new Set(messages.map((m) => m.order_id))];
    await tx
      .select({ id: orders.id })
      .from(orders)
      .where(anyOf(orders.id, ids, "uuid"))
      .orderBy(asc(orders.id))
      .for("update");
  },
  lockRowsPerOrder: true,
});

/** `ended`, and a line saying how the order of `m` ended, under the request id that placed it. */
const decided =
  (m: { order_id: string; request_id?: string }, ended?: SagaEnded, log?: Logger, reason?: string): SagaEnded =>
  (status, seconds) => {
    ended?.(status, seconds);
    log?.info(`order ${status}`, {
      order_id: m.order_id,
      status,
      reason,
      saga_seconds: Math.round(seconds * 1000) / 1000,
      request_id: m.request_id,
    });
  };

/** The topics registry's consumer group reads. */
export const REGISTRY_TOPICS = ["success", "rejected_orders"] as const;
