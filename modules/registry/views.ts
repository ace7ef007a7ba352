/** Registry's products and orders as the API shows them (and the live feed, which builds on orderView). */
import type { orderItems, orders, products } from "./schema";

type OrderRow = typeof orders.$inferSelect;
type ItemRow = typeof orderItems.$inferSelect;

/** A product as the API shows it. */
export const productView = (p: typeof products.$inferSelect) => ({
  id: p.id,
  sku: p.sku,
  name: p.name,
  price_cents: p.priceCents,
});

/**
 * Where a rejected order's undoing stands: `done` once wallet and storage each confirmed it
 * (or rejected the order themselves, doing nothing), `pending` until then; null otherwise.
 */
const compensationOf = (o: Pick<OrderRow, "status" | "walletUndone" | "storageUndone">) =>
  o.status !== "rejected" ? null : o.walletUndone && o.storageUndone ? ("done" as const) : ("pending" as const);

/** An order as the API shows it. */
export const orderView = (o: OrderRow, items: ItemRow[]) => ({
  id: o.id,
  user_id: o.userId,
  status: o.status,
  reason: o.reason,
  compensation: compensationOf(o),
  total_cents: o.totalCents,
  items: items.map((i) => ({
    product_id: i.productId,
    quantity: i.quantity,
    unit_price_cents: i.unitPriceCents,
    line_total_cents: i.unitPriceCents * i.quantity,
  })),
  created_at: o.createdAt.toISOString(),
  updated_at: o.updatedAt.toISOString(),
});
/** An order as the API shows it, without its timeline. */
export type OrderView = ReturnType<typeof orderView>;
