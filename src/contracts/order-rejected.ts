/** `rejected_orders`: an order cannot go on; everyone undoes their part. */
import { z } from "zod";
import { ServiceName } from "./envelope";

export const ORDER_REJECTED = "OrderRejected";

/** Stable rejection reasons. */
export const RejectionReason = z.enum([
  "insufficient_funds",
  "unknown_wallet",
  "out_of_stock",
  "unknown_product",
  "timeout",
  // Registry never made this order (a forged or stray OrderCreated): undo whatever was done for it.
  "unknown_order",
]);
export type RejectionReason = z.infer<typeof RejectionReason>;

/** Payload of OrderRejected (version 1). */
export const OrderRejectedSchema = z.object({
  order_id: z.uuid(),
  service: ServiceName,
  reason: RejectionReason,
  message: z.string().max(500),
});
export type OrderRejected = z.infer<typeof OrderRejectedSchema>;
