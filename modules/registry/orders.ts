/** Orders as clients place and read them: pricing and storing an order with its OrderCreated, paging and fetching. */
import { and, asc, desc, eq, inArray, lt, type SQL, sql } from "drizzle-orm";
import { createMessage } from "../../src/contracts";
import { allInOne, insertMany } from "../../src/db/bulk";
import { afterCommit, type Database } from "../../src/db/database";
import { rowsOf } from "../../src/db/rows";
import { InvariantError } from "../../src/errors";
import type { OutboxWriter } from "../../src/messaging/outbox";
import { activeTraceparent, tagActiveSpan } from "../../src/tracing/spans";
import type { Catalogue } from "./catalogue";
import { REGISTRY_ERRORS } from "./errors";
import { claimKey, type KeyedRequest, recordAnswer } from "./idempotency";
import { type ORDER_STATUSES, orderEvents, orderItems, orders } from "./schema";
import { type OrderView, orderView } from "./views";

type OrderRow = typeof orders.$inferSelect;

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
      throw REGISTRY_ERRORS.error("duplicate_product", `product ${l.product_id} is listed twice`, `items.${i}.product_id`);
    }
    seen.add(l.product_id);
  });
  const known = await catalogue.lookUp([...seen]);
  const items = lines.map((l, i) => {
    const unit = known.get(l.product_id)?.price_cents;
    if (unit === undefined) throw REGISTRY_ERRORS.error("unknown_product", `no product ${l.product_id}`, `items.${i}.product_id`);
    return { product_id: l.product_id, quantity: l.quantity, unit_price_cents: unit };
  });
  const total = items.reduce((sum, i) => sum + i.unit_price_cents * i.quantity, 0);
  const id = crypto.randomUUID();
  // The request's span: the order's decision, however it comes (a sweep too), joins its trace.
  tagActiveSpan({ "shop.order_id": id, "shop.user_id": userId });
  const traceparent = activeTraceparent();
  const itemRows = items.map((i) => ({ orderId: id, productId: i.product_id, quantity: i.quantity, unitPriceCents: i.unit_price_cents }));
  const created = outbox.insert([createMessage("OrderCreated", { order_id: id, user_id: userId, items, total_cents: total })]);
  const place = allInOne([
    insertMany(orderItems, ["orderId", "productId", "quantity", "unitPriceCents"], itemRows),
    insertMany(
      orderEvents,
      ["orderId", "service", "step", "detail"],
      [{ orderId: id, service: "registry", step: "created", detail: `total ${total} cents` }],
    ),
    created.sql,
    sql`insert into ${orders} (${sql.identifier(orders.id.name)}, ${sql.identifier(orders.userId.name)}, ${sql.identifier(orders.totalCents.name)}, ${sql.identifier(orders.traceparent.name)}) values (${id}, ${userId}, ${total}, ${traceparent}) returning *`,
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
  if (!row) throw new InvariantError("the order insert returned no row");
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
    traceparent: (row.traceparent as string | null) ?? null,
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
      ? await r
          .select()
          .from(orderItems)
          .where(
            inArray(
              orderItems.orderId,
              page.map((o) => o.id),
            ),
          )
      : [];
    return {
      orders: page.map((o) =>
        orderView(
          o,
          items.filter((i) => i.orderId === o.id),
        ),
      ),
      next_cursor: rows.length > q.limit ? String(page.at(-1)?.seq) : null,
    };
  });
}

/** One order with its items and timeline; throws unknown_order. */
export async function getOrder(db: Database, id: string) {
  return db.read(async (r) => {
    const [order] = await r.select().from(orders).where(eq(orders.id, id));
    if (!order) throw REGISTRY_ERRORS.error("unknown_order", `no order ${id}`, "id");
    const items = await r.select().from(orderItems).where(eq(orderItems.orderId, id));
    const events = await r.select().from(orderEvents).where(eq(orderEvents.orderId, id)).orderBy(asc(orderEvents.id));
    return {
      ...orderView(order, items),
      timeline: events.map((e) => ({ at: e.at.toISOString(), service: e.service, step: e.step, detail: e.detail })),
    };
  });
}
