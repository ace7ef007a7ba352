/** Everything registry reacts to on the bus. */
import type { MessageHandlers } from "../../src/outbox/message-consumer";
import { recordRejection, recordSuccess } from "./service";

/** Registry's consumer: follow each order's steps and rejections. */
export const registryConsumers: MessageHandlers = {
  StepSucceeded: (tx, m) => recordSuccess(tx, m.payload),
  OrderRejected: (tx, m) => recordRejection(tx, m.payload),
};

/** The topics registry's consumer group reads. */
export const REGISTRY_TOPICS = ["success", "rejected_orders"] as const;
