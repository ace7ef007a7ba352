/** Storage's rules against an in-memory PGlite: receipts, all-or-none reservations, rejections, releases once. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { asc, eq, inArray } from "drizzle-orm";
import type { OrderCreated, OrderRejected } from "../../src/contracts";
import { runAll } from "../../src/db/bulk";
import type { Database } from "../../src/db/database";
import type { Enqueue } from "../../src/messaging/outbox";
import { domainError, inTx, onlyRejection, openModuleDatabase, rejection } from "../../test/support/module-db";
import { storageAuditReport } from "./audit";
import { storageModule } from "./index";
import { receipts, rejectedOrders, reservations, stock } from "./schema";
import { getStock, listStock, MAX_STOCK_UNITS, receive, releaseItems, reserveItems, reserveOrders, seedStock } from "./service";

let db: Database;

beforeAll(async () => {
  db = await openModuleDatabase(storageModule);
});
afterAll(() => db?.close());

/** A product id no other test in this file uses. */
let lastProduct = 10_000;
const newProduct = () => ++lastProduct;

/** New products with the given available units; returns their ids. */
async function stocked(...available: number[]): Promise<number[]> {
  const ids = available.map(() => newProduct());
  await seedStock(
    db,
    ids.map((id, i) => ({ product_id: id, available: available[i] ?? 0 })),
  );
  return ids;
}

/** An OrderCreated for the given [product id, quantity] lines. */
const orderOf = (...lines: [number, number][]): OrderCreated => ({
  order_id: crypto.randomUUID(),
  user_id: 1,
  items: lines.map(([product_id, quantity]) => ({ product_id, quantity, unit_price_cents: 100 })),
  total_cents: lines.reduce((sum, [, q]) => sum + q * 100, 0),
});

const reserve = (order: OrderCreated) => inTx(db, (tx, enqueue) => reserveItems(tx, enqueue, order));
const release = (r: OrderRejected) => inTx(db, (tx, enqueue) => releaseItems(tx, enqueue, r));
/** The payloads of what a call announced. */
const payloads = (sent: { payload: unknown }[]) => sent.map((m) => m.payload);

/** [available, reserved] of each product, in the order given. */
async function levels(...ids: number[]): Promise<[number, number][]> {
  const rows = await db.read((q) => q.select().from(stock).where(inArray(stock.productId, ids)));
  return ids.map((id) => {
    const row = rows.find((r) => r.productId === id);
    if (!row) throw new Error(`no stock row for product ${id}`);
    return [row.available, row.reserved];
  });
}

const reservationsOf = (orderId: string) =>
  db.read((q) => q.select().from(reservations).where(eq(reservations.orderId, orderId)).orderBy(asc(reservations.productId)));

/** What a product holds in live reservations must equal its reserved column. */
async function expectReservedMatchesReservations(...ids: number[]): Promise<void> {
  const rows = await db.read((q) => q.select().from(reservations).where(inArray(reservations.productId, ids)));
  for (const [i, [, reserved]] of (await levels(...ids)).entries()) {
    const held = rows.filter((r) => r.productId === ids[i] && r.state === "reserved").reduce((s, r) => s + r.quantity, 0);
    expect(reserved).toBe(held);
  }
}

describe("receipts", () => {
  test("receiving adds to available stock and records the receipt", async () => {
    const [p] = (await stocked(3)) as [number];
    expect(await receive(db, p, 7)).toMatchObject({ product_id: p, available: 10, reserved: 0 });
    expect(await receive(db, p, 5)).toMatchObject({ available: 15 });
    expect(await getStock(db, p)).toMatchObject({ product_id: p, available: 15, reserved: 0 });
    expect((await listStock(db)).find((s) => s.product_id === p)).toMatchObject({ available: 15 });
    const rows = await db.read((q) => q.select().from(receipts).where(eq(receipts.productId, p)).orderBy(asc(receipts.id)));
    // The starting stock is the first receipt.
    expect(rows.map((r) => r.quantity)).toEqual([3, 7, 5]);
  });

  test("receiving or reading an unknown product fails with unknown_product and stores nothing", async () => {
    const p = newProduct();
    expect(await domainError(receive(db, p, 1))).toMatchObject({ kind: "not_found", code: "unknown_product", field: "product_id" });
    expect(await domainError(getStock(db, p))).toMatchObject({ code: "unknown_product" });
    expect(await db.read((q) => q.select().from(receipts).where(eq(receipts.productId, p)))).toEqual([]);
  });

  test("a receipt that would take available plus reserved past 2,147,483,647 is refused with stock_limit and changes nothing", async () => {
    const [p] = (await stocked(MAX_STOCK_UNITS - 20)) as [number];
    expect(await reserve(orderOf([p, 10]))).toHaveLength(1);
    expect(await levels(p)).toEqual([[MAX_STOCK_UNITS - 30, 10]]);
    // 21 more would fit in `available` alone, but reserving them all later would overflow `reserved`.
    expect(await domainError(receive(db, p, 21))).toMatchObject({ kind: "conflict", code: "stock_limit", field: "quantity" });
    expect(await levels(p)).toEqual([[MAX_STOCK_UNITS - 30, 10]]);
    expect(await db.read((q) => q.select().from(receipts).where(eq(receipts.productId, p)))).toHaveLength(1);
    // Up to the limit exactly; then every unit can be reserved without leaving the range.
    expect(await receive(db, p, 20)).toMatchObject({ available: MAX_STOCK_UNITS - 10, reserved: 10 });
    expect(await reserve(orderOf([p, 1000]))).toHaveLength(1);
    expect(await domainError(receive(db, p, 1))).toMatchObject({ code: "stock_limit" });
  });

  test("seeding never overwrites existing stock", async () => {
    const [p] = (await stocked(4)) as [number];
    await seedStock(db, [{ product_id: p, available: 99 }]);
    expect(await levels(p)).toEqual([[4, 0]]);
  });
});

describe("reserveItems", () => {
  test("reserves every line, moving units from available to reserved, once per order", async () => {
    const [a, b] = (await stocked(5, 2)) as [number, number];
    const order = orderOf([a, 3], [b, 2]);

    const first = await reserve(order);
    expect(first).toHaveLength(1);
    expect(first[0]).toMatchObject({
      type: "StepSucceeded",
      order_id: order.order_id,
      payload: { order_id: order.order_id, service: "storage" },
    });
    expect(await reserve(order)).toEqual([]);

    expect(await levels(a, b)).toEqual([
      [2, 3],
      [0, 2],
    ]);
    expect((await reservationsOf(order.order_id)).map((r) => [r.productId, r.quantity, r.state])).toEqual([
      [a, 3, "reserved"],
      [b, 2, "reserved"],
    ]);
    await expectReservedMatchesReservations(a, b);
  });

  test("all or none: one line short reserves nothing and rejects out_of_stock", async () => {
    const [a, b] = (await stocked(5, 2)) as [number, number];
    const order = orderOf([a, 3], [b, 3]);

    const rejected = onlyRejection(await reserve(order));
    expect(rejected).toEqual({
      order_id: order.order_id,
      service: "storage",
      reason: "out_of_stock",
      message: expect.stringContaining(String(b)),
    });
    expect(await levels(a, b)).toEqual([
      [5, 0],
      [2, 0],
    ]);
    expect(await reservationsOf(order.order_id)).toEqual([]);
    const [remembered] = await db.read((q) => q.select().from(rejectedOrders).where(eq(rejectedOrders.orderId, order.order_id)));
    expect(remembered).toMatchObject({ service: "storage", reason: "out_of_stock" });
    // Redelivery: no second rejection, still nothing reserved.
    expect(await reserve(order)).toEqual([]);
    expect(await levels(a, b)).toEqual([
      [5, 0],
      [2, 0],
    ]);
  });

  test("lines naming one product twice are added up before checking stock", async () => {
    const [a] = (await stocked(4)) as [number];
    expect(onlyRejection(await reserve(orderOf([a, 2], [a, 3]))).reason).toBe("out_of_stock");
    expect(await levels(a)).toEqual([[4, 0]]);

    const fits = orderOf([a, 1], [a, 3]);
    expect((await reserve(fits)).map((m) => m.type)).toEqual(["StepSucceeded"]);
    expect(await levels(a)).toEqual([[0, 4]]);
    expect((await reservationsOf(fits.order_id)).map((r) => r.quantity)).toEqual([4]);
  });

  test("an unknown product rejects with unknown_product and reserves nothing", async () => {
    const [a] = (await stocked(10)) as [number];
    const ghost = newProduct();
    // The unknown product is named even though the known one is also short.
    const order = orderOf([a, 20], [ghost, 1]);
    const rejected = onlyRejection(await reserve(order));
    expect(rejected).toMatchObject({ service: "storage", reason: "unknown_product", message: expect.stringContaining(String(ghost)) });
    expect(await levels(a)).toEqual([[10, 0]]);
    expect(await reservationsOf(order.order_id)).toEqual([]);
  });

  test("a reservation and its message commit together: a failing enqueue reserves nothing", async () => {
    const [a] = (await stocked(3)) as [number];
    const order = orderOf([a, 2]);
    const failing: Enqueue = async () => {
      throw new Error("outbox unavailable");
    };
    await expect(db.transaction((tx) => reserveItems(tx, failing, order))).rejects.toThrow("outbox unavailable");
    expect(await levels(a)).toEqual([[3, 0]]);
    expect(await reservationsOf(order.order_id)).toEqual([]);
  });

  test("orders racing for the last units never oversell", async () => {
    const [a] = (await stocked(5)) as [number];
    const orders = Array.from({ length: 3 }, () => orderOf([a, 2]));
    const outcomes = (await Promise.all(orders.map(reserve))).flat();
    expect(outcomes.filter((m) => m.type === "StepSucceeded")).toHaveLength(2);
    const rejected = outcomes.filter((m) => m.type === "OrderRejected");
    expect(rejected).toHaveLength(1);
    expect(rejected[0]?.payload).toMatchObject({ reason: "out_of_stock" });
    expect(await levels(a)).toEqual([[1, 4]]);
    await expectReservedMatchesReservations(a);
  });
});

describe("releaseItems", () => {
  test("a rejection by another service releases the reservation exactly once", async () => {
    const [a, b] = (await stocked(5, 5)) as [number, number];
    const order = orderOf([a, 2], [b, 5]);
    await reserve(order);
    expect(await levels(a, b)).toEqual([
      [3, 2],
      [0, 5],
    ]);

    expect(payloads(await release(rejection(order.order_id, "wallet", "insufficient_funds")))).toEqual([
      { order_id: order.order_id, service: "storage", action: "released", amount: 7 },
    ]);
    expect(await levels(a, b)).toEqual([
      [5, 0],
      [5, 0],
    ]);
    // The registry's timeout, or a redelivery, releases nothing more and says nothing more.
    expect(await release(rejection(order.order_id, "registry", "timeout"))).toEqual([]);
    expect(await release(rejection(order.order_id, "wallet", "insufficient_funds"))).toEqual([]);
    expect(await levels(a, b)).toEqual([
      [5, 0],
      [5, 0],
    ]);
    expect((await reservationsOf(order.order_id)).map((r) => r.state)).toEqual(["released", "released"]);
    // A late redelivery of OrderCreated does not reserve the rejected order again.
    expect(await reserve(order)).toEqual([]);
    expect(await levels(a, b)).toEqual([
      [5, 0],
      [5, 0],
    ]);
    await expectReservedMatchesReservations(a, b);
  });

  test("releasing one order leaves other orders' reservations alone", async () => {
    const [a] = (await stocked(10)) as [number];
    const kept = orderOf([a, 3]);
    const dropped = orderOf([a, 4]);
    await reserve(kept);
    await reserve(dropped);
    await release(rejection(dropped.order_id, "wallet", "unknown_wallet"));
    expect(await levels(a)).toEqual([[7, 3]]);
    await expectReservedMatchesReservations(a);
  });

  test("a rejection that arrives before OrderCreated makes the later reservation a no-op", async () => {
    const [a] = (await stocked(5)) as [number];
    const order = orderOf([a, 2]);
    expect(payloads(await release(rejection(order.order_id, "wallet", "insufficient_funds")))).toEqual([
      { order_id: order.order_id, service: "storage", action: "nothing_to_undo", amount: 0 },
    ]);
    expect(await reserve(order)).toEqual([]);
    expect(await levels(a)).toEqual([[5, 0]]);
    expect(await reservationsOf(order.order_id)).toEqual([]);
  });

  test("nothing is released for an order storage rejected itself", async () => {
    const [a, b] = (await stocked(5, 1)) as [number, number];
    const order = orderOf([a, 1], [b, 2]);
    expect(onlyRejection(await reserve(order)).reason).toBe("out_of_stock");
    await release(rejection(order.order_id, "registry", "timeout"));
    expect(await levels(a, b)).toEqual([
      [5, 0],
      [1, 0],
    ]);
  });
});

describe("reserveOrders (a batch of OrderCreated in one transaction)", () => {
  const reserveAll = (orders: OrderCreated[]) =>
    inTx(db, async (tx, enqueue) =>
      runAll(
        tx,
        await reserveOrders(
          tx,
          enqueue,
          orders.map((order) => ({ order, cause: {} })),
        ),
      ),
    );

  test("decides in delivery order on the running stock: every item or none, each order as if alone after the ones before it", async () => {
    const [a, b] = await stocked(5, 2);
    const ghost = newProduct();
    const orders = [
      orderOf([a as number, 3], [b as number, 1]),
      orderOf([a as number, 3]),
      orderOf([b as number, 1], [ghost, 1]),
      orderOf([a as number, 2], [b as number, 1]),
      orderOf([b as number, 1]),
    ];
    const sent = await reserveAll(orders);
    expect(sent.map((m): unknown[] => [m.order_id, m.type, (m.payload as { reason?: string }).reason ?? null])).toEqual([
      [orders[0]?.order_id, "StepSucceeded", null],
      [orders[1]?.order_id, "OrderRejected", "out_of_stock"],
      [orders[2]?.order_id, "OrderRejected", "unknown_product"],
      [orders[3]?.order_id, "StepSucceeded", null],
      [orders[4]?.order_id, "OrderRejected", "out_of_stock"],
    ]);
    expect(await levels(a as number, b as number)).toEqual([
      [0, 5],
      [0, 2],
    ]);
    expect((await reservationsOf(orders[3]?.order_id as string)).map((r): unknown[] => [r.productId, r.quantity])).toEqual([
      [a, 2],
      [b, 1],
    ]);
    expect(await reservationsOf(orders[1]?.order_id as string)).toEqual([]);
    const remembered = await db.read((q) => q.select().from(rejectedOrders));
    for (const o of [orders[1], orders[2], orders[4]]) expect(remembered.some((r) => r.orderId === o?.order_id)).toBe(true);
  });

  test("a row past the limit from before receipts were checked: an order that would overflow reserved is rejected, not a failed batch", async () => {
    const [p, q] = (await stocked(10, 10)) as [number, number];
    await db.autocommit((x) =>
      x
        .update(stock)
        .set({ available: MAX_STOCK_UNITS, reserved: MAX_STOCK_UNITS - 1 })
        .where(eq(stock.productId, p)),
    );
    const [tooMany, fits, elsewhere] = [orderOf([p, 2]), orderOf([p, 1]), orderOf([q, 1])];
    const sent = await reserveAll([tooMany, fits, elsewhere]);
    expect(sent.map((m) => [m.order_id, m.type, (m.payload as { reason?: string }).reason ?? null])).toEqual([
      [tooMany.order_id, "OrderRejected", "out_of_stock"],
      [fits.order_id, "StepSucceeded", null],
      [elsewhere.order_id, "StepSucceeded", null],
    ]);
    expect(await levels(p, q)).toEqual([
      [MAX_STOCK_UNITS - 1, MAX_STOCK_UNITS],
      [9, 1],
    ]);
    // The audit adds available and reserved without leaving the integer range: it reports the row, it does not fail.
    const report = await storageAuditReport(db);
    expect(report.violations.some((v) => v.includes(`product ${p}:`))).toBe(true);
  });

  test("one order twice in a batch, or reserved by an earlier batch: reserved once", async () => {
    const [p] = await stocked(10);
    const order = orderOf([p as number, 4]);
    expect((await reserveAll([order, order])).map((m) => m.type)).toEqual(["StepSucceeded"]);
    expect(await reserveAll([order])).toEqual([]);
    expect(await levels(p as number)).toEqual([[6, 4]]);
    expect(await reservationsOf(order.order_id)).toHaveLength(1);
  });
});
