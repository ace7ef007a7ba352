/**
 * Storage's audit report: its own books (per product, receipts = available + reserved and
 * reserved = its live reservations, nothing negative, every outbox row published) and, per
 * order, what it holds and what it released, for the cross-module check. Set-based, one snapshot.
 */
import { sql } from "drizzle-orm";
import type { StorageAuditReport } from "../../src/contracts/audit";
import type { Database, Executor } from "../../src/db/database";
import { rowsOf } from "../../src/db/rows";
import { checkOutbox, LISTED, localViolations, readSnapshot } from "../../src/saga/audit/module-checks";
import * as tables from "./schema";

/** Builds storage's report from one snapshot of its tables. */
export async function storageAuditReport(db: Database): Promise<StorageAuditReport> {
  const checkedAt = new Date().toISOString();
  return readSnapshot(db, async (tx) => {
    const out = localViolations();
    const products = await checkStock(tx, out);
    await checkRows(tx, out);
    const { orders, reservations } = await orderFacts(tx);
    const messaging = await checkOutbox(tx, tables, out);
    return {
      module: "storage" as const,
      checked_at: checkedAt,
      violations: out.list(),
      counts: { products, reservations, orders: orders.length, ...messaging },
      facts: { orders },
    };
  });
}

type Out = ReturnType<typeof localViolations>;

/** Per product: receipts = available + reserved, reserved = live reservations, nothing negative; returns the number of products. */
async function checkStock(tx: Executor, out: Out): Promise<number> {
  const rows = rowsOf(
    await tx.execute(sql`
      with r as (select product_id, sum(quantity) as received from storage.receipts group by product_id),
           h as (select product_id, coalesce(sum(quantity) filter (where state = 'reserved'), 0) as live
                 from storage.reservations group by product_id)
      -- available + reserved in bigint: their sum may pass the integer range on rows older than the receipt check.
      -- Full joins: hash or merge joins only, whatever the planner guesses about fresh tables.
      select coalesce(s.product_id, r.product_id, h.product_id) as product_id, s.product_id is not null as kept,
             s.available, s.reserved, coalesce(r.received, 0) as received, coalesce(h.live, 0) as live, count(*) over () as total
      from storage.stock s
        full join r on r.product_id = s.product_id
        full join h on h.product_id = coalesce(s.product_id, r.product_id)
      where s.product_id is null or s.available < 0 or s.reserved < 0
         or s.available::bigint + s.reserved <> coalesce(r.received, 0) or s.reserved <> coalesce(h.live, 0)
      order by 1 limit ${LISTED}`),
  );
  out.addCounted(
    "stock",
    Number(rows[0]?.total ?? 0),
    rows.map((r) => {
      const product = `product ${r.product_id}`;
      if (!r.kept) return `${product}: receipts (${r.received} units) or reservations (${r.live} live) but no stock row`;
      const [available, reserved, received, live] = [r.available, r.reserved, r.received, r.live].map(Number) as [
        number,
        number,
        number,
        number,
      ];
      const parts = [];
      if (available < 0 || reserved < 0) parts.push(`negative stock (available ${available}, reserved ${reserved})`);
      if (available + reserved !== received) {
        parts.push(`available ${available} + reserved ${reserved} != received ${received} (off by ${available + reserved - received})`);
      }
      if (reserved !== live) parts.push(`reserved ${reserved} != ${live} units in live reservations`);
      return `${product}: ${parts.join("; ")}`;
    }),
  );
  const [count] = rowsOf(await tx.execute(sql`select count(*) as n from storage.stock`));
  return Number(count?.n ?? 0);
}

/** No receipt takes units away; every reservation holds some units and is reserved or released. */
async function checkRows(tx: Executor, out: Out): Promise<void> {
  const receipts = rowsOf(
    await tx.execute(sql`
      select id, product_id, quantity, count(*) over () as total from storage.receipts where quantity < 0 order by id limit ${LISTED}`),
  );
  out.addCounted(
    "receipts",
    Number(receipts[0]?.total ?? 0),
    receipts.map((r) => `receipt ${r.id} (product ${r.product_id}): negative quantity ${r.quantity}`),
  );
  const held = rowsOf(
    await tx.execute(sql`
      select order_id, product_id, quantity, state, count(*) over () as total from storage.reservations
      where quantity <= 0 or state not in ('reserved', 'released') order by order_id, product_id limit ${LISTED}`),
  );
  out.addCounted(
    "reservations",
    Number(held[0]?.total ?? 0),
    held.map((r) => `reservation of order ${r.order_id}, product ${r.product_id}: ${r.quantity} units, state ${r.state}`),
  );
}

/** Per order: its live and released reservation lines and the age of the first. */
async function orderFacts(tx: Executor): Promise<{ orders: StorageAuditReport["facts"]["orders"]; reservations: number }> {
  const rows = rowsOf(
    await tx.execute(sql`
      select order_id, product_id, quantity, state, extract(epoch from now() - created_at) as age_seconds
      from storage.reservations order by order_id, product_id`),
  );
  const orders: StorageAuditReport["facts"]["orders"] = [];
  let current: StorageAuditReport["facts"]["orders"][number] | undefined;
  for (const r of rows) {
    const id = String(r.order_id);
    if (current?.order_id !== id) {
      current = { order_id: id, live: [], released: [], age_seconds: 0 };
      orders.push(current);
    }
    const line = { product_id: Number(r.product_id), quantity: Number(r.quantity) };
    (r.state === "reserved" ? current.live : current.released).push(line);
    current.age_seconds = Math.max(current.age_seconds, Number(r.age_seconds));
  }
  return { orders, reservations: rows.length };
}
