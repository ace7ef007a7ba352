/** Registry's rules: price and place orders, follow the saga, decide each order's final state. */
import { and, asc, count, desc, eq, inArray, isNull, lt, type SQL, sql } from "drizzle-orm";
import { createMessage, type OrderCompensated, type OrderRejected, type StepSucceeded } from "../../src/contracts";
import { allInOne, anyOf, insertMany, runAll, updateMany } from "../../src/db/bulk";
import { afterCommit, type Database, type Executor } from "../../src/db/database";
import { invalid, notFound } from "../../src/errors";
import type { Catalogue } from "./catalogue";
import { claimKey, type KeyedRequest, recordAnswer } from "./idempotency";
import type { Enqueue, OutboxWriter } from "../../src/messaging/outbox";
import { rowsOf } from "../../src/db/rows";
import { ORDER_STATUSES, orderEvents, orderItems, orders, products, unknownOrders } from "./schema";

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
export const compensationOf = (o: Pick<OrderRow, "status" | "walletUndone" | "storageUndone">) =>
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

/**
 * Prices the lines and stores the order as pending, its lines, its first timeline entry and its
 * OrderCreated in one statement (atomic by itself: no transaction to open and close). With
 * `keyed`, a transaction: the idempotency key first, that statement, then this answer; a key
 * answered already throws AlreadyAnswered (nothing written), one used for another body
 * idempotency_key_reused.
 */
export async function placeOrder(
  db: Database,
  catalogue: Catalogue,
  outbox: Pick<OutboxWriter, "insert">,
  userId: number,
  lines: OrderLine[],
  keyed?: KeyedRequest,
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
  const created = outbox.insert([createMessage("OrderCreated", { order_id: id, user_id: userId, items, total_cents: total })]);
  const place = allInOne([
    insertMany(orderItems, ["orderId", "productId", "quantity", "unitPriceCents"], itemRows),
    insertMany(orderEvents, ["orderId", "service", "step", "detail"], [{ orderId: id, service: "registry", step: "created", detail: `total ${total} cents` }]),
    created.sql,
    sql`insert into ${orders} (${sql.identifier(orders.id.name)}, ${sql.identifier(orders.userId.name)}, ${sql.identifier(orders.totalCents.name)}) values (${id}, ${userId}, ${total}) returning *`,
  ]);
  const stored = (rows: Record<string, unknown>[]) => orderView(rawOrder(rows[0]), itemRows);
  if (!keyed) {
    const view = stored(rowsOf(await db.autocommit((q) => q.execute(place))));
    created.written();
    return view;
  }
  return db.transaction(async (tx) => {
    // First, so that a concurrent request with the same key waits here for this one to commit.
    await claimKey(tx, keyed);
    const view = stored(rowsOf(await tx.execute(place)));
    afterCommit(tx, created.written);
    await recordAnswer(tx, keyed, id, { statusCode: 201, body: view });
    return view;
  });
}

/** An orders row as a raw query returns it (snake_case, driver types) in drizzle's shape. */
function rawOrder(row: Record<string, unknown> | undefined): OrderRow {
  if (!row) throw new Error("the order insert returned no row");
  const date = (v: unknown): Date => (v instanceof Date ? v : (orders.createdAt.mapFromDriverValue(String(v)) as Date));
  return {
    id: String(row.id),
    seq: Number(row.seq),
    userId: Number(row.user_id),
    status: row.status as OrderRow["status"],
    reason: (row.reason as string | null) ?? null,
    totalCents: Number(row.total_cents),
    walletDone: row.wallet_done === true,
    storageDone: row.storage_done === true,
    walletUndone: row.wallet_undone === true,
    storageUndone: row.storage_undone === true,
    createdAt: date(row.created_at),
    updatedAt: date(row.updated_at),
  };
}

/** A page of orders, newest first; `cursor` is the `next_cursor` of the previous page. */
export async function listOrders(
  db: Database,
  q: { user_id?: number; status?: (typeof ORDER_STATUSES)[number]; limit: number; cursor?: number },
) {
  return db.read(async (r) => {
    const where: SQL[] = [];
    if (q.user_id !== undefined) where.push(eq(orders.userId, q.user_id));
    if (q.status !== undefined) where.push(eq(orders.status, q.status));
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

/** Told, once the transaction committed, that an order reached its final state `seconds` after it was placed. */
export type SagaEnded = (status: "completed" | "rejected", seconds: number) => void;

/** Seconds from an order's creation to now (the database's clock, like created_at's default). */
const sagaSeconds = sql<number>`extract(epoch from now() - ${orders.createdAt})::double precision`;

/** StepSucceeded: note the step once; complete the order when wallet and storage both succeeded (recordSuccesses with one). */
export async function recordSuccess(tx: Executor, step: StepSucceeded, ended?: SagaEnded): Promise<void> {
  await runAll(tx, await recordSuccesses(tx, [{ step, ended }]));
}

/**
 * StepSucceeded, many at once, in delivery order, as recordSuccess would one by one: one statement
 * reads (and locks, in id order) the orders, their flags and statuses are worked out here; the
 * writes (the orders, their timeline entries, the orders registry never made) come back for the
 * consumer to run in one statement.
 */
export async function recordSuccesses(tx: Executor, run: { step: StepSucceeded; ended?: SagaEnded }[]): Promise<SQL[]> {
  const steps = run.filter((r) => r.step.service !== "registry");
  if (steps.length === 0) return [];
  const ids = [...new Set(steps.map((r) => r.step.order_id))].sort();
  const read = await tx
    .select({ id: orders.id, status: orders.status, walletDone: orders.walletDone, storageDone: orders.storageDone, seconds: sagaSeconds })
    .from(orders)
    .where(anyOf(orders.id, ids, "uuid"))
    .orderBy(asc(orders.id))
    .for("update");
  const byId = new Map(read.map((o) => [o.id, o]));
  const changed = new Set<string>();
  const events: (typeof orderEvents.$inferInsert)[] = [];
  const unknown: (typeof unknownOrders.$inferInsert)[] = [];
  for (const { step, ended } of steps) {
    const service = step.service as "wallet" | "storage";
    const order = byId.get(step.order_id);
    if (!order) {
      // Registry never made this order: it must be undone (after a grace, by rejectUnknownOrders).
      unknown.push({ orderId: step.order_id, service });
      continue;
    }
    const flag = service === "wallet" ? "walletDone" : "storageDone";
    if (order[flag]) continue; // recorded already
    order[flag] = true;
    changed.add(order.id);
    events.push({ orderId: order.id, service, step: service === "wallet" ? "paid" : "reserved" });
    if (order.status === "pending" && order.walletDone && order.storageDone) {
      order.status = "completed";
      events.push({ orderId: order.id, service: "registry", step: "completed" });
      if (ended) afterCommit(tx, () => ended("completed", Number(order.seconds)));
    }
  }
  if (changed.size === 0 && unknown.length === 0) return [];
  const rows = [...changed].map((id) => byId.get(id) as (typeof read)[number]);
  return [
    updateMany(orders, ["id", "status", "walletDone", "storageDone"], rows, sql`updated_at = now()`),
    insertMany(orderEvents, ["orderId", "service", "step"], events),
    insertMany(unknownOrders, ["orderId", "service"], unknown, sql`on conflict do nothing`),
  ];
}

/**
 * OrderRejected by a participant: the first rejection decides a pending order, and registry
 * announces its decision (OrderRejected in its own name) so the participants undo their parts:
 * they act on registry's word only, so a rejection of an order already completed undoes nothing.
 * Every rejection is on the timeline. A participant that rejects did nothing for the order, so it
 * has nothing to undo.
 */
export async function recordRejection(tx: Executor, enqueue: Enqueue, rejection: OrderRejected, ended?: SagaEnded): Promise<void> {
  if (rejection.service === "registry") return;
  const undone = rejection.service === "wallet" ? "walletUndone" : "storageUndone";
  const undoneFlag = rejection.service === "wallet" ? orders.walletUndone : orders.storageUndone;
  const [decided] = await tx
    .update(orders)
    .set({ status: "rejected", reason: rejection.reason, updatedAt: new Date(), [undone]: true })
    .where(and(eq(orders.id, rejection.order_id), eq(orders.status, "pending")))
    .returning({ id: orders.id, seconds: sagaSeconds });
  if (decided) {
    if (ended) afterCommit(tx, () => ended("rejected", Number(decided.seconds)));
    const message = `${rejection.service}: ${rejection.message}`.slice(0, 500);
    await enqueue(tx, createMessage("OrderRejected", { order_id: decided.id, service: "registry", reason: rejection.reason, message }));
  } else {
    // Decided already (or never made): only note, once, that this participant did nothing.
    const [noted] = await tx
      .update(orders)
      .set({ [undone]: true })
      .where(and(eq(orders.id, rejection.order_id), eq(undoneFlag, false)))
      .returning({ id: orders.id });
    if (!noted) {
      // Heard already (a replay under a new message id), or an order registry never made.
      await noteIfUnknown(tx, rejection.order_id, rejection.service);
      return;
    }
  }
  await tx.insert(orderEvents).values({
    orderId: rejection.order_id,
    service: rejection.service,
    step: "rejected",
    detail: `${rejection.reason}: ${rejection.message}`,
  });
}

/** OrderCompensated: a participant undid its part of a rejected order (or had nothing to undo); noted once. */
export async function recordCompensation(tx: Executor, c: OrderCompensated): Promise<void> {
  const flag = c.service === "wallet" ? orders.walletUndone : orders.storageUndone;
  const [order] = await tx
    .update(orders)
    .set({ [c.service === "wallet" ? "walletUndone" : "storageUndone"]: true, updatedAt: new Date() })
    .where(and(eq(orders.id, c.order_id), eq(flag, false)))
    .returning({ id: orders.id });
  // Already noted, or an order registry never made (its undoing is the participants' business: no answer, no loop).
  if (!order) return;
  const detail = c.action === "refunded" ? `${c.amount} cents` : c.action === "released" ? `${c.amount} ${c.amount === 1 ? "unit" : "units"}` : null;
  await tx.insert(orderEvents).values({ orderId: order.id, service: c.service, step: c.action, detail });
}

/** A participant acted on an order registry may never have made: remember it, to reject it after a grace. */
async function noteIfUnknown(tx: Executor, orderId: string, service: string): Promise<void> {
  const [known] = await tx.select({ id: orders.id }).from(orders).where(eq(orders.id, orderId));
  if (known) return;
  await tx.insert(unknownOrders).values({ orderId, service }).onConflictDoNothing();
}

/**
 * Rejects (`unknown_order`) the orders a participant acted on that registry never made, once each,
 * after `graceMs` (a real order is always stored before its OrderCreated leaves, so the grace only
 * absorbs clock skew). Returns their ids.
 */
export async function rejectUnknownOrders(db: Database, enqueue: Enqueue, graceMs: number): Promise<string[]> {
  const due = and(isNull(unknownOrders.answeredAt), lt(unknownOrders.firstSeenAt, sql`now() - make_interval(secs => ${graceMs / 1000})`));
  const [any] = await db.read((q) => q.select({ id: unknownOrders.orderId }).from(unknownOrders).where(due).limit(1));
  if (!any) return [];
  return db.transaction(async (tx) => {
    const rows = await tx
      .select({
        id: unknownOrders.orderId,
        service: unknownOrders.service,
        known: sql<boolean>`exists (select 1 from ${orders} where ${orders.id} = ${unknownOrders.orderId})`,
      })
      .from(unknownOrders)
      .where(due)
      .limit(EXPIRY_BATCH)
      .for("update", { skipLocked: true });
    if (rows.length === 0) return [];
    await tx.update(unknownOrders).set({ answeredAt: new Date() }).where(inArray(unknownOrders.orderId, rows.map((r) => r.id)));
    const unknown = rows.filter((r) => !r.known);
    for (const r of unknown) {
      const message = `registry has no order ${r.id} (first heard of from ${r.service})`;
      await enqueue(tx, createMessage("OrderRejected", { order_id: r.id, service: "registry", reason: "unknown_order", message }));
    }
    return unknown.map((r) => r.id);
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

/** Rejects pending orders older than the deadline and tells the participants; returns their ids. */
export async function rejectExpiredOrders(db: Database, enqueue: Enqueue, deadlineMs: number, ended?: SagaEnded): Promise<string[]> {
  // The database's clock, like created_at's default: app and database clocks may differ.
  const cutoff = sql`now() - make_interval(secs => ${deadlineMs / 1000})`;
  const overdue = and(eq(orders.status, "pending"), lt(orders.createdAt, cutoff));
  // Usually nothing is due: one read, no transaction.
  const [any] = await db.read((q) => q.select({ id: orders.id }).from(orders).where(overdue).limit(1));
  if (!any) return [];
  return db.transaction(async (tx) => {
    const due = await tx
      .select({ id: orders.id })
      .from(orders)
      .where(overdue)
      .limit(EXPIRY_BATCH)
      .for("update", { skipLocked: true });
    if (due.length === 0) return [];
    const expired = await tx
      .update(orders)
      .set({ status: "rejected", reason: "timeout", updatedAt: new Date() })
      .where(and(inArray(orders.id, due.map((o) => o.id)), eq(orders.status, "pending")))
      .returning({ id: orders.id, seconds: sagaSeconds });
    for (const { id, seconds } of expired) {
      if (ended) afterCommit(tx, () => ended("rejected", Number(seconds)));
      const message = `no outcome within ${deadlineMs / 1000} s`;
      await tx.insert(orderEvents).values({ orderId: id, service: "registry", step: "rejected", detail: `timeout: ${message}` });
      await enqueue(tx, createMessage("OrderRejected", { order_id: id, service: "registry", reason: "timeout", message }));
    }
    return expired.map((o) => o.id);
  });
}

/** How many orders are in each state (and reason): counters that survive restarts, read from the table. */
export async function orderCounts(db: Database) {
  const rows = await db.read((q) =>
    q
      .select({ status: orders.status, reason: orders.reason, compensation: sql<string | null>`case when ${orders.status} <> 'rejected' then null when ${orders.walletUndone} and ${orders.storageUndone} then 'done' else 'pending' end`, n: count() })
      .from(orders)
      .groupBy(sql`1, 2, 3`),
  );
  const [unknown] = await db.read((q) => q.select({ n: count() }).from(unknownOrders));
  return { orders: rows, unknownOrders: unknown?.n ?? 0 };
}

/** A saga whose outcome or compensations are overdue. */
export interface StuckSaga {
  order_id: string;
  status: (typeof ORDER_STATUSES)[number];
  reason: string | null;
  /** `outcome`: still pending past the deadline; `compensation`: rejected, but a participant has not confirmed its undoing. */
  overdue: "outcome" | "compensation";
  /** Participants that have not answered. */
  waiting_for: ("wallet" | "storage")[];
  created_at: string;
  updated_at: string;
  overdue_seconds: number;
}

/**
 * Orders still pending `graceMs` past the deadline (the sweeper should have rejected them), and
 * rejected orders whose compensations are not all confirmed `compensationMs` after the rejection.
 */
export async function stuckSagas(
  db: Database,
  opts: { deadlineMs: number; graceMs: number; compensationMs: number; limit: number },
): Promise<StuckSaga[]> {
  const secs = (ms: number) => sql`make_interval(secs => ${ms / 1000})`;
  const rows = await db.read((q) =>
    q
      .select({
        o: orders,
        overdueSeconds: sql<string>`extract(epoch from now() - case when ${orders.status} = 'pending' then ${orders.createdAt} + ${secs(opts.deadlineMs)} else ${orders.updatedAt} end)`,
      })
      .from(orders)
      .where(
        sql`(${orders.status} = 'pending' and ${orders.createdAt} < now() - ${secs(opts.deadlineMs + opts.graceMs)})
          or (${orders.status} = 'rejected' and not (${orders.walletUndone} and ${orders.storageUndone}) and ${orders.updatedAt} < now() - ${secs(opts.compensationMs)})`,
      )
      .orderBy(asc(orders.seq))
      .limit(opts.limit),
  );
  return rows.map(({ o, overdueSeconds }) => {
    const waiting: ("wallet" | "storage")[] = [];
    if (o.status === "pending") {
      if (!o.walletDone) waiting.push("wallet");
      if (!o.storageDone) waiting.push("storage");
    } else {
      if (!o.walletUndone) waiting.push("wallet");
      if (!o.storageUndone) waiting.push("storage");
    }
    return {
      order_id: o.id,
      status: o.status,
      reason: o.reason,
      overdue: o.status === "pending" ? ("outcome" as const) : ("compensation" as const),
      waiting_for: waiting,
      created_at: o.createdAt.toISOString(),
      updated_at: o.updatedAt.toISOString(),
      overdue_seconds: Math.max(0, Math.round(Number(overdueSeconds))),
    };
  });
}
