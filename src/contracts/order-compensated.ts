/** `success_topics`: a participant says what it undid for a rejected order, so registry can close it. */
import { z } from "zod";

export const ORDER_COMPENSATED = "OrderCompensated";

/** What a participant did about a rejection: gave the money back, put the units back, or had nothing to undo. */
const CompensationAction = z.enum(["refunded", "released", "nothing_to_undo"]);

/** Payload of OrderCompensated (version 1). Sent once per order by each participant that did not reject it. */
export const OrderCompensatedSchema = z.object({
  order_id: z.uuid(),
  service: z.enum(["wallet", "storage"]),
  action: CompensationAction,
  /** Cents refunded or units released (0 for nothing_to_undo). */
  amount: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
});
export type OrderCompensated = z.infer<typeof OrderCompensatedSchema>;
