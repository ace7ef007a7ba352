/** Storage's rules: receive goods, reserve an order's items (all or none), release them. */
import { and, asc, eq, inArray, type SQL, sql } from "drizzle-orm";
import { createMessage, type Message, type OrderCreated, type OrderRejected } from "../../src/contracts";
import { anyOf, insertMany, runAll, updateMany } from "../../src/db/bulk";
import type { Database, Executor } from "../../src/db/database";
import { rowsOf } from "../../src/db/rows";
import { InvariantError } from "../../src/errors";
import { answerOnce, type KeyedRequest } from "../../src/idempotency";
import { type Enqueue, withCause } from "../../src/messaging/outbox";
import { rememberRejection } from "../../src/saga/rejections";
import { compensationDone } from "../../src/tracing/spans";
import { STORAGE_ERRORS } from "./errors";
import { idempotencyKeys, receipts, rejectedOrders, reservations, stock } from "./schema";

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
  if (!row) throw STORAGE_ERRORS.error("unknown_product", `no stock kept for product ${productId}`, "product_id");
  return view(row);
}

/** The most units a product can hold, available and reserved together: its columns are 32-bit integers. */
export const MAX_STOCK_UNITS = 2_147_483_647;

/**
 * Adds received units to a product's available stock. With `keyed`, the key is claimed first in
 * the same transaction and the answer stored with the receipt: a key answered already throws
 * AlreadyAnswered (nothing written), one used for another body idempotency_key_reused.
 */
export async function receive(db: Database, productId: number, quantity: number, keyed?: KeyedRequest): Promise<StockView> {
  return db.transaction((tx) => answerOnce(tx, idempotencyKeys, keyed, 201, () => addToStock(tx, productId, quantity)));
}

/**
 * The receipt itself, in `tx`: refused with stock_limit if available plus reserved would pass
 * MAX_STOCK_UNITS (reserving moves units from one to the other, so neither can pass it later).
 */
async function addToStock(tx: Executor, productId: number, quantity: number): Promise<StockView> {
  const [current] = await tx
    .select({ available: stock.available, reserved: stock.reserved })
    .from(stock)
    .where(eq(stock.productId, productId))
    .for("update");
  if (!current) throw STORAGE_ERRORS.error("unknown_product", `no stock kept for product ${productId}`, "product_id");
  if (current.available + current.reserved + quantity > MAX_STOCK_UNITS) {
    throw stockLimit(
      `product ${productId} would hold more than ${MAX_STOCK_UNITS} units (available ${current.available}, reserved ${current.reserved}, received ${quantity})`,
    );
  }
  const [row] = await tx
    .update(stock)
    .set({ available: sql`${stock.available} + ${quantity}`, updatedAt: new Date() })
    .where(eq(stock.productId, productId))
    .returning();
  if (!row) throw new InvariantError(`stock row of product ${productId} vanished`);
  await tx.insert(receipts).values({ productId, quantity });
  return view(row);
}

/** 409 stock_limit: a receipt would take a product past MAX_STOCK_UNITS. */
const stockLimit = (message: string) => STORAGE_ERRORS.error("stock_limit", message, "quantity");

/** OrderCreated: reserve every item or none; announce the outcome (reserveOrders with one order). */
export async function reserveItems(tx: Executor, enqueue: Enqueue, order: OrderCreated): Promise<void> {
  await runAll(tx, await reserveOrders(tx, enqueue, [{ order, cause: {} }]));
}

/** A run of OrderCreated messages (see reserveOrders). */
type Created = { order: OrderCreated; cause: Pick<Message, "request_id"> };

/** Stock levels of the products in a run of OrderCreated, by product id. */
type Levels = Map<number, { available: number; reserved: number }>;

/**
 * One statement: the stock rows of every product in `run` (locked, in product order) and the
 * orders of `run` already reserved or rejected.
 */
async function readStockAndDecided(tx: Executor, run: Created[]): Promise<{ levels: Levels; decided: Set<string> }> {
  const orderIds = [...new Set(run.map((c) => c.order.order_id))];
  const products = [...new Set(run.flatMap((c) => c.order.items.map((i) => i.product_id)))].sort((a, b) => a - b);
  const read = rowsOf(
    await tx.execute(sql`with s as (
        select ${stock.productId} as product_id, ${stock.available} as available, ${stock.reserved} as reserved
        from ${stock} where ${anyOf(stock.productId, products, "integer")} order by ${stock.productId} for update
      ), d as (
        select ${rejectedOrders.orderId} as order_id from ${rejectedOrders} where ${anyOf(rejectedOrders.orderId, orderIds, "uuid")}
        union select ${reservations.orderId} from ${reservations} where ${anyOf(reservations.orderId, orderIds, "uuid")}
      )
      select product_id, available, reserved, null::uuid as order_id from s union all select null, null, null, order_id from d`),
  );
  const levels: Levels = new Map();
  const decided = new Set<string>();
  for (const r of read) {
    if (r.order_id === null) levels.set(Number(r.product_id), { available: Number(r.available), reserved: Number(r.reserved) });
    else decided.add(String(r.order_id));
  }
  return { levels, decided };
}

/** Why storage refuses an order wanting `wanted` of products `ids` at `levels` (null: it can hold them all). */
function whyRejected(orderId: string, ids: number[], wanted: Map<number, number>, levels: Levels): OrderRejected | null {
  const missing = ids.find((id) => !levels.has(id));
  if (missing !== undefined)
    return { order_id: orderId, service: "storage", reason: "unknown_product", message: `no stock kept for product ${missing}` };
  const short = ids.find((id) => (levels.get(id)?.available ?? 0) < (wanted.get(id) ?? 0));
  if (short !== undefined)
    return { order_id: orderId, service: "storage", reason: "out_of_stock", message: `not enough of product ${short}` };
  // Only a row that passed MAX_STOCK_UNITS before receipts were checked: refused, not an integer overflow.
  const full = ids.find((id) => (levels.get(id)?.reserved ?? 0) + (wanted.get(id) ?? 0) > MAX_STOCK_UNITS);
  if (full !== undefined)
    return {
      order_id: orderId,
      service: "storage",
      reason: "out_of_stock",
      message: `product ${full} cannot hold more than ${MAX_STOCK_UNITS} reserved units`,
    };
  return null;
}

/**
 * OrderCreated, many at once: for each order in delivery order reserve every item or none, once,
 * as reserveItems would one by one. One statement reads (and locks, in product order) the stock
 * rows and finds the orders already reserved or rejected; the stock is worked out here; the writes
 * (the stock, the reservations and the rejections) come back for the consumer to run in one statement.
 */
export async function reserveOrders(tx: Executor, enqueue: Enqueue, run: Created[]): Promise<SQL[]> {
  const { levels, decided } = await readStockAndDecided(tx, run);
  const touched = new Set<number>();
  const held: (typeof reservations.$inferInsert)[] = [];
  const rejections: (typeof rejectedOrders.$inferInsert)[] = [];
  for (const { order, cause } of run) {
    const orderId = order.order_id;
    // Reserved or rejected already (before, or earlier in this run under another message id): nothing to do.
    if (decided.has(orderId)) continue;
    decided.add(orderId);
    const wanted = mergeItems(order.items);
    const ids = [...wanted.keys()].sort((a, b) => a - b);
    const rejection = whyRejected(orderId, ids, wanted, levels);
    if (rejection) {
      rejections.push({ orderId, service: rejection.service, reason: rejection.reason });
      await enqueue(tx, withCause(cause, createMessage("OrderRejected", rejection)));
      continue;
    }
    for (const id of ids) {
      const level = levels.get(id) as { available: number; reserved: number };
      const quantity = wanted.get(id) ?? 0;
      level.available -= quantity;
      level.reserved += quantity;
      touched.add(id);
      held.push({ orderId, productId: id, quantity });
    }
    await enqueue(tx, withCause(cause, createMessage("StepSucceeded", { order_id: orderId, service: "storage" })));
  }
  if (held.length === 0 && rejections.length === 0) return [];
  const levelRows = [...touched].map((id) => ({ productId: id, ...(levels.get(id) as { available: number; reserved: number }) }));
  return [
    updateMany(stock, ["productId", "available", "reserved"], levelRows, sql`updated_at = now()`),
    insertMany(reservations, ["orderId", "productId", "quantity"], held),
    insertMany(rejectedOrders, ["orderId", "service", "reason"], rejections, sql`on conflict do nothing`),
  ];
}

/** Moves units between available and reserved in one statement: a negative delta reserves, a positive one releases. */
async function moveStock(tx: Executor, delta: Map<number, number>): Promise<void> {
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
export async function releaseItems(tx: Executor, enqueue: Enqueue, rejection: OrderRejected): Promise<void> {
  const orderId = rejection.order_id;
  if (!(await rememberRejection(tx, rejectedOrders, rejection))) {
    // Rejected here first (or heard already): nothing of ours to undo, nothing to say.
    compensationDone("none_rejected_here");
    return;
  }
  const released = await tx
    .update(reservations)
    .set({ state: "released", releasedAt: new Date() })
    .where(and(eq(reservations.orderId, orderId), eq(reservations.state, "reserved")))
    .returning();
  await moveStock(tx, new Map(released.map((r) => [r.productId, r.quantity])));
  const units = released.reduce((n, r) => n + r.quantity, 0);
  compensationDone(released.length > 0 ? "released" : "nothing_to_undo", units);
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
