/** Registry's rules against an in-memory PGlite: pricing and placing orders, following the saga, timeouts, paging. */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { eq, inArray, sql } from "drizzle-orm";
import { pgSchema } from "drizzle-orm/pg-core";
import type { OrderCreated, OrderRejected, StepSucceeded } from "../../src/contracts";
import { runAll } from "../../src/db/bulk";
import type { Database } from "../../src/db/database";
import type { Enqueue } from "../../src/messaging/outbox";
import { messagingTables } from "../../src/messaging/tables";
import { capture, captureOutbox, domainError, openModuleDatabase } from "../../test/support/module-db";
import { type Catalogue, createCatalogue, listProducts, seedProducts } from "./catalogue";
import { registryModule } from "./index";
import { deadLetters, inbox, orders, outbox, products, unknownOrders } from "./schema";

/** Registry's messaging tables (placeOrder writes its OrderCreated into the real outbox). */
const registryTables = { outbox, inbox, deadLetters };

import { registryAuditReport } from "./audit";
import { stuckSagas } from "./operator";
import { getOrder, listOrders, type OrderLine, placeOrder } from "./orders";
import { recordCompensation, recordRejection, recordSuccess, recordSuccesses } from "./saga";
import { rejectExpiredOrders, rejectUnknownOrders, SWEEP_SLACK_MS } from "./sweepers";

let db: Database;
let prices: Catalogue;

beforeAll(async () => {
  db = await openModuleDatabase(registryModule);
  prices = createCatalogue(db);
});
afterAll(() => db?.close());

/** Ids no other test in this file uses. */
let lastId = 10_000;
const newUser = () => ++lastId;

/** New catalogue entries at the given prices; returns their ids. */
async function catalogue(...pricesCents: number[]): Promise<number[]> {
  const ids = pricesCents.map(() => ++lastId);
  await seedProducts(
    db,
    ids.map((id, i) => ({ id, sku: `T-${id}`, name: `Test product ${id}`, price_cents: pricesCents[i] ?? 0 })),
  );
  return ids;
}

/** Places an order and returns it with the messages it staged. */
async function place(userId: number, lines: OrderLine[]) {
  const { sent, outbox } = captureOutbox(registryTables);
  const order = await placeOrder(db, prices, outbox, userId, lines);
  return { order, sent };
}

/** A pending order of one unit of a fresh product. */
async function pendingOrder(userId = newUser()): Promise<string> {
  const [p] = (await catalogue(1_000)) as [number];
  return (await place(userId, [{ product_id: p, quantity: 1 }])).order.id;
}

const succeed = (orderId: string, service: StepSucceeded["service"]) =>
  db.transaction((tx) => recordSuccess(tx, { order_id: orderId, service }));

/** A participant's rejection; returns what registry announced in answer. */
const reject = async (orderId: string, service: OrderRejected["service"], reason: OrderRejected["reason"]) => {
  const { sent, enqueue } = capture();
  await db.transaction((tx) => recordRejection(tx, enqueue, { order_id: orderId, service, reason, message: `${service} says ${reason}` }));
  return sent;
};

/** Moves an order's creation time `ms` into the past. */
const age = (id: string, ms: number) =>
  db.transaction((tx) =>
    tx
      .update(orders)
      .set({ createdAt: sql`${orders.createdAt} - make_interval(secs => ${ms / 1000})` })
      .where(eq(orders.id, id)),
  );

const compensate = (orderId: string, service: "wallet" | "storage", action: "refunded" | "released" | "nothing_to_undo") =>
  db.transaction((tx) => recordCompensation(tx, { order_id: orderId, service, action, amount: action === "nothing_to_undo" ? 0 : 5 }));

const compensationOf = async (orderId: string) => (await getOrder(db, orderId)).compensation;

const statusOf = async (orderId: string) => {
  const o = await getOrder(db, orderId);
  return { status: o.status, reason: o.reason };
};

const stepsOf = async (orderId: string) => (await getOrder(db, orderId)).timeline.map((e) => `${e.service}:${e.step}`);

const ordersOfUser = (userId: number) => db.read((q) => q.select().from(orders).where(eq(orders.userId, userId)));

describe("placeOrder", () => {
  test("prices lines from the catalogue and stores a pending order with one OrderCreated", async () => {
    const user = newUser();
    const [a, b] = (await catalogue(1_250, 399)) as [number, number];
    const { order, sent } = await place(user, [
      { product_id: a, quantity: 2 },
      { product_id: b, quantity: 3 },
    ]);

    const total = 2 * 1_250 + 3 * 399;
    expect(order).toMatchObject({ user_id: user, status: "pending", reason: null, total_cents: total });
    expect(order.items).toEqual(
      expect.arrayContaining([
        { product_id: a, quantity: 2, unit_price_cents: 1_250, line_total_cents: 2_500 },
        { product_id: b, quantity: 3, unit_price_cents: 399, line_total_cents: 1_197 },
      ]),
    );
    expect(order.items).toHaveLength(2);

    expect(sent).toHaveLength(1);
    const [message] = sent;
    if (message?.type !== "OrderCreated") throw new Error(`expected OrderCreated, got ${message?.type}`);
    expect(message.order_id).toBe(order.id);
    expect(message.payload).toEqual({
      order_id: order.id,
      user_id: user,
      items: [
        { product_id: a, quantity: 2, unit_price_cents: 1_250 },
        { product_id: b, quantity: 3, unit_price_cents: 399 },
      ],
      total_cents: total,
    } satisfies OrderCreated);

    const stored = await getOrder(db, order.id);
    expect(stored).toMatchObject({ status: "pending", total_cents: total });
    expect(stored.timeline.map((e) => [e.service, e.step])).toEqual([["registry", "created"]]);
    expect(await ordersOfUser(user)).toHaveLength(1);
  });

  test("an order keeps the price it was placed at", async () => {
    const [p] = (await catalogue(500)) as [number];
    const { order } = await place(newUser(), [{ product_id: p, quantity: 4 }]);
    await db.transaction((tx) => tx.update(products).set({ priceCents: 9_999 }).where(eq(products.id, p)));
    const stored = await getOrder(db, order.id);
    expect(stored.total_cents).toBe(2_000);
    expect(stored.items).toEqual([{ product_id: p, quantity: 4, unit_price_cents: 500, line_total_cents: 2_000 }]);
    expect((await listProducts(db)).find((x) => x.id === p)?.price_cents).toBe(9_999);
  });

  test("an unknown product is refused with unknown_product naming the line; nothing is stored", async () => {
    const user = newUser();
    const [p] = (await catalogue(100)) as [number];
    const ghost = ++lastId;
    const { sent, outbox } = captureOutbox(registryTables);
    const err = await domainError(
      placeOrder(db, prices, outbox, user, [
        { product_id: p, quantity: 1 },
        { product_id: ghost, quantity: 1 },
      ]),
    );
    expect(err).toMatchObject({ kind: "invalid", code: "unknown_product", field: "items.1.product_id" });
    expect(sent).toEqual([]);
    expect(await ordersOfUser(user)).toEqual([]);
  });

  test("a product listed twice is refused with duplicate_product naming the second line; nothing is stored", async () => {
    const user = newUser();
    const [p, q] = (await catalogue(100, 200)) as [number, number];
    const { sent, outbox } = captureOutbox(registryTables);
    const err = await domainError(
      placeOrder(db, prices, outbox, user, [
        { product_id: p, quantity: 1 },
        { product_id: q, quantity: 1 },
        { product_id: p, quantity: 2 },
      ]),
    );
    expect(err).toMatchObject({ kind: "invalid", code: "duplicate_product", field: "items.2.product_id" });
    expect(sent).toEqual([]);
    expect(await ordersOfUser(user)).toEqual([]);
  });

  test("the order and its message commit together: an outbox that cannot be written stores no order", async () => {
    const user = newUser();
    const [p] = (await catalogue(100)) as [number];
    // An outbox table that does not exist: the one statement fails as a whole.
    const { outbox: failing } = captureOutbox(messagingTables(pgSchema("no_such_schema")));
    await expect(placeOrder(db, prices, failing, user, [{ product_id: p, quantity: 1 }])).rejects.toThrow("no_such_schema");
    expect(await ordersOfUser(user)).toEqual([]);
  });

  test("seeding the catalogue never overwrites an existing product", async () => {
    const [p] = (await catalogue(700)) as [number];
    await seedProducts(db, [{ id: p, sku: `T-${p}`, name: "renamed", price_cents: 1 }]);
    expect((await listProducts(db)).find((x) => x.id === p)).toEqual({ id: p, sku: `T-${p}`, name: `Test product ${p}`, price_cents: 700 });
  });
});

describe("following the saga", () => {
  test("completes only once both wallet and storage succeeded, in either order", async () => {
    for (const [first, second] of [
      ["wallet", "storage"],
      ["storage", "wallet"],
    ] as const) {
      const id = await pendingOrder();
      await succeed(id, first);
      // A redelivered success changes nothing.
      await succeed(id, first);
      // registry's own name is no step of the saga.
      await succeed(id, "registry");
      expect(await statusOf(id)).toEqual({ status: "pending", reason: null });
      await succeed(id, second);
      expect(await statusOf(id)).toEqual({ status: "completed", reason: null });
      const [row] = await db.read((q) => q.select().from(orders).where(eq(orders.id, id)));
      expect(row).toMatchObject({ walletDone: true, storageDone: true });
      const stepName = { wallet: "paid", storage: "reserved" };
      expect(await stepsOf(id)).toEqual([
        "registry:created",
        `${first}:${stepName[first]}`,
        `${second}:${stepName[second]}`,
        "registry:completed",
      ]);
    }
  });

  test("a rejection after one success rejects with that reason; later news does not change it", async () => {
    const id = await pendingOrder();
    await succeed(id, "wallet");
    // Registry announces its decision in its own name: the participants undo on its word only.
    expect((await reject(id, "storage", "out_of_stock")).map((m) => m.payload)).toEqual([
      { order_id: id, service: "registry", reason: "out_of_stock", message: "storage: storage says out_of_stock" },
    ]);
    expect(await statusOf(id)).toEqual({ status: "rejected", reason: "out_of_stock" });

    await succeed(id, "storage");
    // Decided already: noted, not announced again.
    expect(await reject(id, "wallet", "insufficient_funds")).toEqual([]);
    // The same rejections replayed under new message ids: nothing more on the timeline.
    await reject(id, "storage", "out_of_stock");
    await reject(id, "wallet", "insufficient_funds");
    expect(await statusOf(id)).toEqual({ status: "rejected", reason: "out_of_stock" });
    expect(await stepsOf(id)).toEqual(["registry:created", "wallet:paid", "storage:rejected", "storage:reserved", "wallet:rejected"]);
    expect((await getOrder(db, id)).timeline[2]?.detail).toContain("out_of_stock");
  });

  test("a rejection after completion does not reopen the order", async () => {
    const id = await pendingOrder();
    await succeed(id, "wallet");
    await succeed(id, "storage");
    // No genuine rejection exists for a completed order: registry announces nothing, so nobody undoes anything.
    expect(await reject(id, "wallet", "insufficient_funds")).toEqual([]);
    expect(await statusOf(id)).toEqual({ status: "completed", reason: null });
    expect(await compensationOf(id)).toBeNull();
  });

  test("registry's own rejection echoed back and messages about unknown orders change nothing", async () => {
    const id = await pendingOrder();
    await reject(id, "registry", "timeout");
    expect(await statusOf(id)).toEqual({ status: "pending", reason: null });
    expect(await stepsOf(id)).toEqual(["registry:created"]);

    const ghost = crypto.randomUUID();
    await succeed(ghost, "wallet");
    await reject(ghost, "storage", "out_of_stock");
    expect(await domainError(getOrder(db, ghost))).toMatchObject({ kind: "not_found", code: "unknown_order", field: "id" });
  });
});

describe("compensations", () => {
  test("a rejected order is closed only once each participant confirmed its undoing; the timeline shows each", async () => {
    const id = await pendingOrder();
    await succeed(id, "wallet");
    expect(await compensationOf(id)).toBeNull();
    await reject(id, "storage", "out_of_stock");
    // Storage rejected, so it did nothing; wallet paid and must refund.
    expect(await statusOf(id)).toEqual({ status: "rejected", reason: "out_of_stock" });
    expect(await compensationOf(id)).toBe("pending");
    await compensate(id, "wallet", "refunded");
    expect(await compensationOf(id)).toBe("done");
    // A redelivered confirmation is noted once.
    await compensate(id, "wallet", "refunded");
    expect(await stepsOf(id)).toEqual(["registry:created", "wallet:paid", "storage:rejected", "wallet:refunded"]);
    expect((await getOrder(db, id)).timeline.at(-1)?.detail).toBe("5 cents");
  });

  test("a timed-out order waits for both participants, whatever order their answers come in", async () => {
    const id = await pendingOrder();
    await compensate(id, "storage", "nothing_to_undo");
    await age(id, 60_000);
    const { enqueue } = capture();
    expect(await rejectExpiredOrders(db, enqueue, 1000)).toContain(id);
    expect(await compensationOf(id)).toBe("pending");
    const stuck = await stuckSagas(db, { deadlineMs: 1000, graceMs: 0, compensationMs: 0, limit: 1000 });
    expect(stuck.find((s) => s.order_id === id)).toMatchObject({ overdue: "compensation", waiting_for: ["wallet"], reason: "timeout" });
    await compensate(id, "wallet", "nothing_to_undo");
    expect(await compensationOf(id)).toBe("done");
    const after = await stuckSagas(db, { deadlineMs: 1000, graceMs: 0, compensationMs: 0, limit: 1000 });
    expect(after.find((s) => s.order_id === id)).toBeUndefined();
  });

  test("GET /orders?status= lists only orders in that state", async () => {
    const user = newUser();
    const done = await pendingOrder(user);
    const open = await pendingOrder(user);
    await succeed(done, "wallet");
    await succeed(done, "storage");
    const only = async (status: "pending" | "completed" | "rejected") =>
      (await listOrders(db, { user_id: user, status, limit: 10 })).orders.map((o) => o.id);
    expect(await only("completed")).toEqual([done]);
    expect(await only("pending")).toEqual([open]);
    expect(await only("rejected")).toEqual([]);
  });
});

describe("unknown orders", () => {
  test("effects for an order registry never made are answered once with unknown_order after the grace", async () => {
    const ghost = crypto.randomUUID();
    await succeed(ghost, "wallet");
    await reject(ghost, "storage", "out_of_stock");
    await compensate(ghost, "wallet", "refunded");
    const graceMs = 60_000;
    const first = capture();
    expect(await rejectUnknownOrders(db, first.enqueue, graceMs)).toEqual([]);
    await db.transaction((tx) =>
      tx.update(unknownOrders).set({ firstSeenAt: sql`now() - interval '2 minutes'` }).where(eq(unknownOrders.orderId, ghost)),
    );
    const { sent, enqueue } = capture();
    expect(await rejectUnknownOrders(db, enqueue, graceMs)).toContain(ghost);
    expect(sent.find((m) => m.order_id === ghost)).toMatchObject({
      type: "OrderRejected",
      payload: { order_id: ghost, service: "registry", reason: "unknown_order" },
    });
    // Answered once: neither a second sweep nor more news about it sends anything again.
    await succeed(ghost, "storage");
    const again = capture();
    expect(await rejectUnknownOrders(db, again.enqueue, graceMs)).toEqual([]);
    expect(again.sent).toEqual([]);
    expect(await domainError(getOrder(db, ghost))).toMatchObject({ code: "unknown_order" });
  });

  test("a real order is never answered as unknown", async () => {
    const id = await pendingOrder();
    await succeed(id, "wallet");
    await db.transaction((tx) => tx.insert(unknownOrders).values({ orderId: id, service: "wallet", firstSeenAt: new Date(0) }));
    const { sent, enqueue } = capture();
    expect(await rejectUnknownOrders(db, enqueue, 0)).not.toContain(id);
    expect(sent.filter((m) => m.order_id === id)).toEqual([]);
  });
});

describe("the sweeper's slack", () => {
  test("the stuck-sagas view and the audit call the same pending orders overdue: none within the slack, both past it", async () => {
    const deadlineMs = 60 * 60_000;
    const within = await pendingOrder();
    const past = await pendingOrder();
    await age(within, deadlineMs + SWEEP_SLACK_MS / 2);
    await age(past, deadlineMs + 2 * SWEEP_SLACK_MS);
    // As GET /admin/sagas/stuck asks (the slack by default) and as GET /admin/audit reports.
    const stuck = new Set((await stuckSagas(db, { deadlineMs, compensationMs: 3_600_000, limit: 10_000 })).map((s) => s.order_id));
    const report = await registryAuditReport(db, {
      deadlineSeconds: deadlineMs / 1000,
      compensationDeadlineSeconds: 3600,
      unknownOrderGraceSeconds: 60,
    });
    const audited = JSON.stringify(report.violations);
    expect([stuck.has(within), audited.includes(within)]).toEqual([false, false]);
    expect([stuck.has(past), audited.includes(past)]).toEqual([true, true]);
    // Out of the way of the other tests' sweeps.
    await age(within, -(deadlineMs + SWEEP_SLACK_MS / 2));
    await age(past, -(deadlineMs + 2 * SWEEP_SLACK_MS));
  });
});

describe("rejectExpiredOrders", () => {
  test("rejects only pending orders older than the deadline, telling everyone with reason timeout", async () => {
    const deadlineMs = 10 * 60_000;
    const stale = await pendingOrder();
    const staleDone = await pendingOrder();
    const staleRejected = await pendingOrder();
    const fresh = await pendingOrder();
    await succeed(staleDone, "wallet");
    await succeed(staleDone, "storage");
    await reject(staleRejected, "wallet", "unknown_wallet");
    for (const id of [stale, staleDone, staleRejected]) await age(id, 2 * deadlineMs);

    const { sent, enqueue } = capture();
    expect(await rejectExpiredOrders(db, enqueue, deadlineMs)).toEqual([stale]);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({
      type: "OrderRejected",
      order_id: stale,
      payload: { order_id: stale, service: "registry", reason: "timeout", message: expect.any(String) },
    });

    expect(await statusOf(stale)).toEqual({ status: "rejected", reason: "timeout" });
    expect(await statusOf(staleDone)).toEqual({ status: "completed", reason: null });
    expect(await statusOf(staleRejected)).toEqual({ status: "rejected", reason: "unknown_wallet" });
    expect(await statusOf(fresh)).toEqual({ status: "pending", reason: null });
    expect(await stepsOf(stale)).toEqual(["registry:created", "registry:rejected"]);

    // Swept once: a second sweep finds nothing, and late successes do not complete it.
    const again = capture();
    expect(await rejectExpiredOrders(db, again.enqueue, deadlineMs)).toEqual([]);
    expect(again.sent).toEqual([]);
    await succeed(stale, "wallet");
    await succeed(stale, "storage");
    expect(await statusOf(stale)).toEqual({ status: "rejected", reason: "timeout" });
  });

  test("the timeout and its message commit together: a failing enqueue leaves the order pending", async () => {
    const deadlineMs = 10 * 60_000;
    const stale = await pendingOrder();
    await age(stale, 2 * deadlineMs);
    const failing: Enqueue = async () => {
      throw new Error("outbox unavailable");
    };
    await expect(rejectExpiredOrders(db, failing, deadlineMs)).rejects.toThrow("outbox unavailable");
    expect(await statusOf(stale)).toEqual({ status: "pending", reason: null });

    const { sent, enqueue } = capture();
    expect(await rejectExpiredOrders(db, enqueue, deadlineMs)).toEqual([stale]);
    expect(sent.map((m) => m.order_id)).toEqual([stale]);
  });
});

describe("listOrders", () => {
  test("pages a user's orders newest first with next_cursor, and only theirs", async () => {
    const user = newUser();
    const other = newUser();
    const placed: string[] = [];
    for (let i = 0; i < 5; i++) placed.push(await pendingOrder(user));
    await pendingOrder(other);

    const seen: string[] = [];
    const cursors: (string | null)[] = [];
    let cursor: number | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const page = await listOrders(db, { user_id: user, limit: 2, cursor });
      expect(page.orders.length).toBeLessThanOrEqual(2);
      for (const o of page.orders) {
        expect(o.user_id).toBe(user);
        expect(o.items).toHaveLength(1);
      }
      seen.push(...page.orders.map((o) => o.id));
      cursors.push(page.next_cursor);
      if (page.next_cursor === null) break;
      cursor = Number(page.next_cursor);
    }
    expect(seen).toEqual([...placed].reverse());
    expect(cursors.map((c) => c === null)).toEqual([false, false, true]);

    // A page that holds exactly the rest has no next page.
    const whole = await listOrders(db, { user_id: user, limit: 5 });
    expect(whole.orders.map((o) => o.id)).toEqual([...placed].reverse());
    expect(whole.next_cursor).toBeNull();
  });

  test("without a user filter, the newest orders of everyone come first", async () => {
    const a = await pendingOrder();
    const b = await pendingOrder();
    const page = await listOrders(db, { limit: 2 });
    expect(page.orders.map((o) => o.id)).toEqual([b, a]);
    expect(page.next_cursor).not.toBeNull();
    const rows = await db.read((q) =>
      q
        .select()
        .from(orders)
        .where(inArray(orders.id, [a, b])),
    );
    expect(rows).toHaveLength(2);
  });
});

describe("recordSuccesses (a batch of StepSucceeded in one transaction)", () => {
  test("both steps of an order in one batch complete it once; repeats and registry's name change nothing; an unknown order is noted", async () => {
    const [a, b] = [await pendingOrder(), await pendingOrder()];
    const ghost = crypto.randomUUID();
    const ended: string[] = [];
    const step = (order_id: string, service: StepSucceeded["service"]) => ({
      step: { order_id, service },
      ended: (status: "completed" | "rejected") => ended.push(`${order_id}:${status}`),
    });
    const apply = (steps: ReturnType<typeof step>[]) => db.transaction(async (tx) => runAll(tx, await recordSuccesses(tx, steps)));
    await apply([
      step(a, "wallet"),
      step(b, "storage"),
      step(a, "wallet"),
      step(ghost, "storage"),
      step(a, "storage"),
      step(a, "registry"),
    ]);
    expect(await statusOf(a)).toEqual({ status: "completed", reason: null });
    expect(await statusOf(b)).toEqual({ status: "pending", reason: null });
    expect(await stepsOf(a)).toEqual(["registry:created", "wallet:paid", "storage:reserved", "registry:completed"]);
    expect(await stepsOf(b)).toEqual(["registry:created", "storage:reserved"]);
    expect(ended).toEqual([`${a}:completed`]);
    const noted = await db.read((q) => q.select().from(unknownOrders).where(eq(unknownOrders.orderId, ghost)));
    expect(noted).toHaveLength(1);
    // The same batch again: nothing changes.
    await apply([step(a, "wallet"), step(a, "storage"), step(b, "storage")]);
    expect(await stepsOf(a)).toHaveLength(4);
    expect(await stepsOf(b)).toHaveLength(2);
    expect(ended).toHaveLength(1);
  });
});
