/** Registry's rules: price and place orders, follow the saga, decide each order's final state. */
import { and, asc, desc, eq, inArray, lt, type SQL, sql } from "drizzle-orm";
import { createMessage, type OrderRejected, type StepSucceeded } from "../../src/contracts";
import type { Database, Db } from "../../src/db/database";
import { invalid, notFound } from "../../src/errors";
import type { Catalogue } from "./catalogue";
import type { Enqueue } from "../../src/outbox/outbox";
import { orderEvents, orderItems, orders, products } from "./schema";

type OrderRow = typeof orders.$inferSelect;
type ItemRow = typeof orderItems.$inferSelect;

/** A product as the API shows it. */
export const productView = (p: typeof products.$inferSelect) => ({
  id: p.id,
  sku: p.sku,
  name: p.name,
  price_cents: p.priceCents,
});

/** An order as the API shows it. */
export const orderView = (o: OrderRow, items: ItemRow[]) => ({
  id: o.id,
  user_id: o.userId,
  status: o.status,
  reason: o.reason,
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
export type OrderView = ReturnType<typeof orderView>;

/** Inserts catalogue entries that are not there yet. */
export async function seedProducts(db: Database, seed: { id: number; sku: string; name: string; price_cents: number }[]) {
  if (seed.length === 0) return;
  await db.transaction((tx) =>
    tx
      .insert(products)
      .values(seed.map((p) => ({ id: p.id, sku: p.sku, name: p.name, priceCents: p.price_cents })))
      .onConflictDoNothing(),
  );
}

/** The whole catalogue by id. */
export async function listProducts(db: Database) {
  const rows = await db.read((q) => q.select().from(products).orderBy(asc(products.id)));
  return rows.map(productView);
}

/** A requested order line. */
export interface OrderLine {
  product_id: number;
  quantity: number;
}

/** Prices the lines, stores the order as pending and its OrderCreated in one transaction. */
export async function placeOrder(
  db: Database,
  catalogue: Catalogue,
  enqueue: Enqueue,
  userId: number,
  lines: OrderLine[],
): Promise<OrderView> {
  const seen = new Set<number>();
  lines.forEach((l, i) => {
    if (seen.has(l.product_id)) {
      throw invalid("duplicate_product", `product ${l.product_id} is listed twice`, `items.${i}.product_id`);
    }
    seen.add(l.product_id);
  });
  const known = await catalogue.lookUp([...seen]);
  const items = lines.map((l, i) => {
    const unit = known.get(l.product_id)?.price_cents;
    if (unit === undefined) throw invalid("unknown_product", `no product ${l.product_id}`, `items.${i}.product_id`);
    return { product_id: l.product_id, quantity: l.quantity, unit_price_cents: unit };
  });
  const total = items.reduce((sum, i) => sum + i.unit_price_cents * i.quantity, 0);
  const id = crypto.randomUUID();
  const itemRows = items.map((i) => ({ orderId: id, productId: i.product_id, quantity: i.quantity, unitPriceCents: i.unit_price_cents }));
  return db.transaction(async (tx) => {
    // The order, its lines and its first timeline entry in one statement.
    const lines = tx.$with("lines").as(tx.insert(orderItems).values(itemRows).returning({ productId: orderItems.productId }));
    const created = tx
      .$with("created")
      .as(tx.insert(orderEvents).values({ orderId: id, service: "registry", step: "created", detail: `total ${total} cents` }).returning({ id: orderEvents.id }));
    const order = tx.$with("placed").as(tx.insert(orders).values({ id, userId, totalCents: total }).returning());
    const [row] = await tx.with(lines, created, order).select().from(order);
    await enqueue(tx, createMessage("OrderCreated", { order_id: id, user_id: userId, items, total_cents: total }));
    return orderView(row as OrderRow, itemRows);
  });
}

/** A page of orders, newest first; `cursor` is the `next_cursor` of the previous page. */
export async function listOrders(db: Database, q: { user_id?: number; limit: number; cursor?: number }) {
  return db.read(async (r) => {
    const where: SQL[] = [];
    if (q.user_id !== undefined) where.push(eq(orders.userId, q.user_id));
    if (q.cursor !== undefined) where.push(lt(orders.seq, q.cursor));
    const rows = await r
      .select()
      .from(orders)
      .where(and(...where))
      .orderBy(desc(orders.seq))
      .limit(q.limit + 1);
    const page = rows.slice(0, q.limit);
    const items = page.length
      ? await r.select().from(orderItems).where(inArray(orderItems.orderId, page.map((o) => o.id)))
      : [];
    return {
      orders: page.map((o) => orderView(o, items.filter((i) => i.orderId === o.id))),
      next_cursor: rows.length > q.limit ? String(page.at(-1)?.seq) : null,
    };
  });
}

/** One order with its items and timeline; throws unknown_order. */
export async function getOrder(db: Database, id: string) {
  return db.read(async (r) => {
    const [order] = await r.select().from(orders).where(eq(orders.id, id));
    if (!order) throw notFound("unknown_order", `no order ${id}`, "id");
    const items = await r.select().from(orderItems).where(eq(orderItems.orderId, id));
    const events = await r.select().from(orderEvents).where(eq(orderEvents.orderId, id)).orderBy(asc(orderEvents.id));
    return {
      ...orderView(order, items),
      timeline: events.map((e) => ({ at: e.at.toISOString(), service: e.service, step: e.step, detail: e.detail })),
    };
  });
}

/** StepSucceeded: note the step once; complete the order when wallet and storage both succeeded. */
export async function recordSuccess(tx: Db, step: StepSucceeded): Promise<void> {
  if (step.service === "registry") return;
  const flag = step.service === "wallet" ? orders.walletDone : orders.storageDone;
  const other = step.service === "wallet" ? orders.storageDone : orders.walletDone;
  // One statement: set this step's flag unless it was set, completing a pending order whose other step is done.
  const [order] = await tx
    .update(orders)
    .set({
      [step.service === "wallet" ? "walletDone" : "storageDone"]: true,
      status: sql`case when ${orders.status} = 'pending' and ${other} then 'completed' else ${orders.status} end`,
      updatedAt: new Date(),
    })
    .where(and(eq(orders.id, step.order_id), eq(flag, false)))
    .returning({ id: orders.id, status: orders.status });
  if (!order) return; // unknown order, or this step was already recorded
  const events: (typeof orderEvents.$inferInsert)[] = [
    { orderId: order.id, service: step.service, step: step.service === "wallet" ? "paid" : "reserved" },
  ];
  // Only this update can have completed it: an order with both flags already set is not matched.
  if (order.status === "completed") events.push({ orderId: order.id, service: "registry", step: "completed" });
  await tx.insert(orderEvents).values(events);
}

/** OrderRejected by a participant: the first rejection decides a pending order; every one is on the timeline. */
export async function recordRejection(tx: Db, rejection: OrderRejected): Promise<void> {
  if (rejection.service === "registry") return;
  const pending = sql`${orders.status} = 'pending'`;
  const [order] = await tx
    .update(orders)
    .set({
      status: sql`case when ${pending} then 'rejected' else ${orders.status} end`,
      reason: sql`case when ${pending} then ${rejection.reason} else ${orders.reason} end`,
      updatedAt: sql`case when ${pending} then now() else ${orders.updatedAt} end`,
    })
    .where(eq(orders.id, rejection.order_id))
    .returning({ id: orders.id });
  if (!order) return;
  await tx.insert(orderEvents).values({
    orderId: order.id,
    service: rejection.service,
    step: "rejected",
    detail: `${rejection.reason}: ${rejection.message}`,
  });
}

const EXPIRY_BATCH = 500;

/** Milliseconds until the oldest pending order reaches the deadline (0 if it has), or null if none is pending. */
export async function nextExpiryInMs(db: Database, deadlineMs: number): Promise<number | null> {
  const [row] = await db.read((q) =>
    q
      .select({ ageMs: sql<string | null>`extract(epoch from now() - min(${orders.createdAt})) * 1000` })
      .from(orders)
      .where(eq(orders.status, "pending")),
  );
  if (row?.ageMs === null || row?.ageMs === undefined) return null;
  return Math.max(0, deadlineMs - Number(row.ageMs));
}

/** Rejects pending orders older than the deadline and tells the participants; returns how many. */
export async function rejectExpiredOrders(db: Database, enqueue: Enqueue, deadlineMs: number): Promise<number> {
  // The database's clock, like created_at's default: app and database clocks may differ.
  const cutoff = sql`now() - make_interval(secs => ${deadlineMs / 1000})`;
  const overdue = and(eq(orders.status, "pending"), lt(orders.createdAt, cutoff));
  // Usually nothing is due: one read, no transaction.
  const [any] = await db.read((q) => q.select({ id: orders.id }).from(orders).where(overdue).limit(1));
  if (!any) return 0;
  return db.transaction(async (tx) => {
    const due = await tx
      .select({ id: orders.id })
      .from(orders)
      .where(overdue)
      .limit(EXPIRY_BATCH)
      .for("update", { skipLocked: true });
    if (due.length === 0) return 0;
    const expired = await tx
      .update(orders)
      .set({ status: "rejected", reason: "timeout", updatedAt: new Date() })
      .where(and(inArray(orders.id, due.map((o) => o.id)), eq(orders.status, "pending")))
      .returning({ id: orders.id });
    for (const { id } of expired) {
      const message = `no outcome within ${deadlineMs / 1000} s`;
      await tx.insert(orderEvents).values({ orderId: id, service: "registry", step: "rejected", detail: `timeout: ${message}` });
      await enqueue(tx, createMessage("OrderRejected", { order_id: id, service: "registry", reason: "timeout", message }));
    }
    return expired.length;
  });
}
