/** Storage's rules: receive goods, reserve an order's items (all or none), release them. */
import { and, asc, eq, inArray, notExists, sql } from "drizzle-orm";
import { createMessage, type OrderCreated, type OrderRejected } from "../../src/contracts";
import type { Database, Db } from "../../src/db/database";
import { notFound } from "../../src/errors";
import type { Enqueue } from "../../src/outbox/outbox";
import { isRejected, rememberRejection } from "../../src/outbox/rejections";
import { receipts, rejectedOrders, reservations, stock } from "./schema";

/** Stock of one product as the API shows it. */
export interface StockView {
  product_id: number;
  available: number;
  reserved: number;
  updated_at: string;
}

const view = (s: typeof stock.$inferSelect): StockView => ({
  product_id: s.productId,
  available: s.available,
  reserved: s.reserved,
  updated_at: s.updatedAt.toISOString(),
});

/** Inserts starting stock for products that have none yet, recorded as their first receipt. */
export async function seedStock(db: Database, seed: { product_id: number; available: number }[]) {
  if (seed.length === 0) return;
  await db.transaction(async (tx) => {
    const inserted = await tx
      .insert(stock)
      .values(seed.map((s) => ({ productId: s.product_id, available: s.available })))
      .onConflictDoNothing()
      .returning();
    const received = inserted.filter((s) => s.available > 0);
    if (received.length > 0) await tx.insert(receipts).values(received.map((s) => ({ productId: s.productId, quantity: s.available })));
  });
}

/** Stock of every product. */
export async function listStock(db: Database): Promise<StockView[]> {
  const rows = await db.read((q) => q.select().from(stock).orderBy(asc(stock.productId)));
  return rows.map(view);
}

/** Stock of one product; throws unknown_product. */
export async function getStock(db: Database, productId: number): Promise<StockView> {
  const [row] = await db.read((q) => q.select().from(stock).where(eq(stock.productId, productId)));
  if (!row) throw notFound("unknown_product", `no stock kept for product ${productId}`, "product_id");
  return view(row);
}

/** Adds received units to a product's available stock. */
export async function receive(db: Database, productId: number, quantity: number): Promise<StockView> {
  return db.transaction(async (tx) => {
    const [row] = await tx
      .update(stock)
      .set({ available: sql`${stock.available} + ${quantity}`, updatedAt: new Date() })
      .where(eq(stock.productId, productId))
      .returning();
    if (!row) throw notFound("unknown_product", `no stock kept for product ${productId}`, "product_id");
    await tx.insert(receipts).values({ productId, quantity });
    return view(row);
  });
}

/** OrderCreated: reserve every item or none; announce the outcome. */
export async function reserveItems(tx: Db, enqueue: Enqueue, order: OrderCreated): Promise<void> {
  const orderId = order.order_id;
  const wanted = mergeItems(order.items);
  const ids = [...wanted.keys()].sort((a, b) => a - b);
  // Lock rows in id order so concurrent orders cannot deadlock; none come back for a rejected or held order.
  const rows = await tx
    .select()
    .from(stock)
    .where(
      and(
        inArray(stock.productId, ids),
        notExists(tx.select({ one: sql`1` }).from(rejectedOrders).where(eq(rejectedOrders.orderId, orderId))),
        notExists(tx.select({ one: sql`1` }).from(reservations).where(eq(reservations.orderId, orderId))),
      ),
    )
    .orderBy(asc(stock.productId))
    .for("update");
  if (rows.length < ids.length && (await alreadyDecided(tx, orderId))) return;
  const byId = new Map(rows.map((r) => [r.productId, r]));
  const missing = ids.find((id) => !byId.has(id));
  const short = ids.find((id) => (byId.get(id)?.available ?? 0) < (wanted.get(id) ?? 0));
  if (missing !== undefined || short !== undefined) {
    const rejection: OrderRejected =
      missing !== undefined
        ? { order_id: orderId, service: "storage", reason: "unknown_product", message: `no stock kept for product ${missing}` }
        : { order_id: orderId, service: "storage", reason: "out_of_stock", message: `not enough of product ${short}` };
    await rememberRejection(tx, rejectedOrders, rejection);
    await enqueue(tx, createMessage("OrderRejected", rejection));
    return;
  }
  await moveStock(tx, new Map(ids.map((id) => [id, -(wanted.get(id) ?? 0)])));
  await tx.insert(reservations).values(ids.map((id) => ({ orderId, productId: id, quantity: wanted.get(id) ?? 0 })));
  await enqueue(tx, createMessage("StepSucceeded", { order_id: orderId, service: "storage" }));
}

/** True if the order was rejected or already holds a reservation. */
async function alreadyDecided(tx: Db, orderId: string): Promise<boolean> {
  if (await isRejected(tx, rejectedOrders, orderId)) return true;
  const [held] = await tx.select({ id: reservations.orderId }).from(reservations).where(eq(reservations.orderId, orderId)).limit(1);
  return held !== undefined;
}

/** Moves units between available and reserved in one statement: a negative delta reserves, a positive one releases. */
async function moveStock(tx: Db, delta: Map<number, number>): Promise<void> {
  if (delta.size === 0) return;
  const cases = sql.join(
    [...delta].map(([id, d]) => sql`when ${id} then ${d}::integer`),
    sql` `,
  );
  const by = sql`(case ${stock.productId} ${cases} end)`;
  await tx
    .update(stock)
    .set({ available: sql`${stock.available} + ${by}`, reserved: sql`${stock.reserved} - ${by}`, updatedAt: new Date() })
    .where(inArray(stock.productId, [...delta.keys()]));
}

/**
 * OrderRejected by registry: remember it, release what the order holds once, and say what
 * was undone (registry closes the order on it). Heard again: nothing, it was said already.
 */
export async function releaseItems(tx: Db, enqueue: Enqueue, rejection: OrderRejected): Promise<void> {
  const orderId = rejection.order_id;
  if (!(await rememberRejection(tx, rejectedOrders, rejection))) return;
  const released = await tx
    .update(reservations)
    .set({ state: "released", releasedAt: new Date() })
    .where(and(eq(reservations.orderId, orderId), eq(reservations.state, "reserved")))
    .returning();
  await moveStock(tx, new Map(released.map((r) => [r.productId, r.quantity])));
  const units = released.reduce((n, r) => n + r.quantity, 0);
  await enqueue(
    tx,
    createMessage("OrderCompensated", {
      order_id: orderId,
      service: "storage",
      action: released.length > 0 ? "released" : "nothing_to_undo",
      amount: units,
    }),
  );
}

function mergeItems(items: OrderCreated["items"]): Map<number, number> {
  const wanted = new Map<number, number>();
  for (const item of items) wanted.set(item.product_id, (wanted.get(item.product_id) ?? 0) + item.quantity);
  return wanted;
}
