/** Everything storage reacts to on the bus. */
import { and, asc, eq, inArray, or } from "drizzle-orm";
import type { Consumers } from "../../src/messaging/message-consumer";
import { compensation } from "../../src/tracing/spans";
import { reservations, stock } from "./schema";
import { releaseItems, reserveItems, reserveOrders } from "./service";

/** Storage's consumer: reserve new orders' items, release orders registry rejected. */
export const storageConsumers: Consumers = {
  handlers: {
    OrderCreated: (tx, m, enqueue) => reserveItems(tx, enqueue, m.payload),
    OrderRejected: async (tx, m, enqueue) => {
      // Registry decides an order's fate: undo only on its word (a participant's own rejection reaches us through it).
      if (m.payload.service === "registry") await compensation("release items", m.order_id, () => releaseItems(tx, enqueue, m.payload));
    },
  },
  batchHandlers: {
    OrderCreated: (tx, ms, enqueue) =>
      reserveOrders(
        tx,
        enqueue,
        ms.map((m) => ({ order: m.payload, cause: m })),
      ),
  },
  // The stock rows of the items to reserve and of the reservations to release, in product order.
  // A batch of OrderCreated alone locks nothing here: reserveOrders reads its rows locked, in product order.
  lockRows: async (tx, messages) => {
    if (messages.every((m) => m.type === "OrderCreated")) return;
    const products = messages.flatMap((m) => (m.type === "OrderCreated" ? m.payload.items.map((i) => i.product_id) : []));
    const releases = messages.flatMap((m) => (m.type === "OrderRejected" ? [m.order_id] : []));
    const held = tx
      .select({ id: reservations.productId })
      .from(reservations)
      .where(and(inArray(reservations.orderId, releases), eq(reservations.state, "reserved")));
    const conditions = [
      ...(products.length ? [inArray(stock.productId, [...new Set(products)])] : []),
      ...(releases.length ? [inArray(stock.productId, held)] : []),
    ];
    if (conditions.length === 0) return;
    await tx
      .select({ id: stock.productId })
      .from(stock)
      .where(or(...conditions))
      .orderBy(asc(stock.productId))
      .for("update");
  },
};

/** The topics storage's consumer group reads. */
export const STORAGE_TOPICS = ["new_orders", "rejected_orders"] as const;
