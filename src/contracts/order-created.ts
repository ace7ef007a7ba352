/** `new_orders`: registry announces a pending order to wallet and storage. */
import { z } from "zod";
import { Cents, MAX_QUANTITY } from "./envelope";

export const ORDER_CREATED = "OrderCreated";

/** Payload of OrderCreated (version 1). */
export const OrderCreatedSchema = z.object({
  order_id: z.uuid(),
  user_id: z.number().int().positive(),
  items: z
    .array(
      z.object({
        product_id: z.number().int().positive(),
        quantity: z.number().int().min(1).max(MAX_QUANTITY),
        unit_price_cents: Cents,
      }),
    )
    .min(1),
  total_cents: Cents,
});
export type OrderCreated = z.infer<typeof OrderCreatedSchema>;
