/** Wallet's rules against an in-memory PGlite: deposits, debit once per order, rejections, refunds once, no negative balance. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { and, asc, eq, sql } from "drizzle-orm";
import type { OrderCreated, OrderRejected } from "../../src/contracts";
import { runAll } from "../../src/db/bulk";
import type { Database } from "../../src/db/database";
import type { Enqueue } from "../../src/messaging/outbox";
import { domainError, inTx, onlyRejection, openModuleDatabase, rejection } from "../../test/support/module-db";
import { walletModule } from "./index";
import { ledger, rejectedOrders, wallets } from "./schema";
import { debitOrder, debitOrders, deposit, getWallet, listWallets, refundOrder, seedWallets } from "./service";

let db: Database;

beforeAll(async () => {
  db = await openModuleDatabase(walletModule);
});
afterAll(() => db?.close());

/** A user id no other test in this file uses. */
let lastUser = 10_000;
const newUser = () => ++lastUser;

/** An OrderCreated for `userId` totalling `total` cents. */
const orderFor = (userId: number, total: number): OrderCreated => ({
  order_id: crypto.randomUUID(),
  user_id: userId,
  items: [{ product_id: 1, quantity: 1, unit_price_cents: total }],
  total_cents: total,
});

const debit = (order: OrderCreated) => inTx(db, (tx, enqueue) => debitOrder(tx, enqueue, order));
const refund = (r: OrderRejected) => inTx(db, (tx, enqueue) => refundOrder(tx, enqueue, r));
/** The payloads of what a call announced. */
const payloads = (sent: { payload: unknown }[]) => sent.map((m) => m.payload);

const balanceOf = async (userId: number): Promise<number | undefined> => {
  const [row] = await db.read((q) => q.select().from(wallets).where(eq(wallets.userId, userId)));
  return row?.balanceCents;
};

const ledgerOf = (userId: number) => db.read((q) => q.select().from(ledger).where(eq(ledger.userId, userId)).orderBy(asc(ledger.id)));

const ledgerFor = (orderId: string, kind: (typeof ledger.$inferSelect)["kind"]) =>
  db.read((q) =>
    q
      .select()
      .from(ledger)
      .where(and(eq(ledger.orderId, orderId), eq(ledger.kind, kind))),
  );

/** Replays the user's ledger: every row's balance_after is the running sum, never negative, ending at the balance. */
async function expectLedgerMatchesBalance(userId: number): Promise<void> {
  let running = 0;
  for (const row of await ledgerOf(userId)) {
    running += row.kind === "debit" ? -row.amountCents : row.amountCents;
    expect(row.balanceAfterCents).toBe(running);
    expect(running).toBeGreaterThanOrEqual(0);
  }
  expect(await balanceOf(userId)).toBe(running);
}

describe("deposits", () => {
  test("a deposit that would take the balance past its limit is refused and changes nothing", async () => {
    const user = newUser();
    await seedWallets(db, [{ user_id: user, balance_cents: Number.MAX_SAFE_INTEGER - 10 }]);
    const err = await domainError(deposit(db, user, 100));
    expect(err).toMatchObject({ code: "balance_limit", kind: "conflict" });
    expect(await balanceOf(user)).toBe(Number.MAX_SAFE_INTEGER - 10);
    expect(await deposit(db, user, 10)).toMatchObject({ balance_cents: Number.MAX_SAFE_INTEGER });
  });

  test("the first deposit opens the wallet; each deposit adds a ledger row", async () => {
    const user = newUser();
    const missing = await domainError(getWallet(db, user));
    expect(missing).toMatchObject({ kind: "not_found", code: "unknown_wallet", field: "user_id" });

    expect(await deposit(db, user, 500)).toMatchObject({ user_id: user, balance_cents: 500 });
    expect(await deposit(db, user, 250)).toMatchObject({ user_id: user, balance_cents: 750 });

    const wallet = await getWallet(db, user);
    expect(wallet.balance_cents).toBe(750);
    // Newest first.
    expect(wallet.ledger.map((r) => [r.kind, r.amount_cents, r.balance_after_cents, r.order_id])).toEqual([
      ["deposit", 250, 750, null],
      ["deposit", 500, 500, null],
    ]);
    expect((await listWallets(db)).find((w) => w.user_id === user)?.balance_cents).toBe(750);
    await expectLedgerMatchesBalance(user);
  });

  test("seeding opens missing wallets only and never overwrites a balance", async () => {
    const [a, b] = [newUser(), newUser()];
    await seedWallets(db, [{ user_id: a, balance_cents: 1_000 }]);
    await deposit(db, a, 1);
    await seedWallets(db, [
      { user_id: a, balance_cents: 99 },
      { user_id: b, balance_cents: 300 },
    ]);
    expect(await balanceOf(a)).toBe(1_001);
    expect(await balanceOf(b)).toBe(300);
    expect((await ledgerOf(a)).map((r) => r.amountCents)).toEqual([1_000, 1]);
    expect((await ledgerOf(b)).map((r) => r.amountCents)).toEqual([300]);
    await expectLedgerMatchesBalance(a);
    await expectLedgerMatchesBalance(b);
  });
});

describe("debitOrder", () => {
  test("debits the total once per order, however often OrderCreated arrives", async () => {
    const user = newUser();
    await deposit(db, user, 1_000);
    const order = orderFor(user, 300);

    const first = await debit(order);
    expect(first).toHaveLength(1);
    expect(first[0]).toMatchObject({
      type: "StepSucceeded",
      order_id: order.order_id,
      payload: { order_id: order.order_id, service: "wallet" },
    });
    expect(await debit(order)).toEqual([]);

    expect(await balanceOf(user)).toBe(700);
    const debits = await ledgerFor(order.order_id, "debit");
    expect(debits).toHaveLength(1);
    expect(debits[0]).toMatchObject({ userId: user, amountCents: 300, balanceAfterCents: 700 });
    await expectLedgerMatchesBalance(user);
  });

  test("a balance exactly equal to the total is enough", async () => {
    const user = newUser();
    await deposit(db, user, 450);
    const sent = await debit(orderFor(user, 450));
    expect(sent.map((m) => m.type)).toEqual(["StepSucceeded"]);
    expect(await balanceOf(user)).toBe(0);
    await expectLedgerMatchesBalance(user);
  });

  test("insufficient_funds: rejected, remembered, balance untouched", async () => {
    const user = newUser();
    await deposit(db, user, 100);
    const order = orderFor(user, 101);

    expect(onlyRejection(await debit(order))).toEqual({
      order_id: order.order_id,
      service: "wallet",
      reason: "insufficient_funds",
      message: expect.any(String),
    });
    // A redelivered OrderCreated neither debits nor rejects a second time.
    expect(await debit(order)).toEqual([]);

    expect(await balanceOf(user)).toBe(100);
    expect(await ledgerFor(order.order_id, "debit")).toEqual([]);
    const [remembered] = await db.read((q) => q.select().from(rejectedOrders).where(eq(rejectedOrders.orderId, order.order_id)));
    expect(remembered).toMatchObject({ service: "wallet", reason: "insufficient_funds" });
    await expectLedgerMatchesBalance(user);
  });

  test("unknown_wallet: rejected without opening a wallet", async () => {
    const user = newUser();
    const order = orderFor(user, 1);
    expect(onlyRejection(await debit(order))).toMatchObject({ service: "wallet", reason: "unknown_wallet" });
    expect(await balanceOf(user)).toBeUndefined();
    expect(await ledgerOf(user)).toEqual([]);
  });

  test("the debit and its message commit together: a failing enqueue leaves no debit", async () => {
    const user = newUser();
    await deposit(db, user, 500);
    const order = orderFor(user, 200);
    const failing: Enqueue = async () => {
      throw new Error("outbox unavailable");
    };
    await expect(db.transaction((tx) => debitOrder(tx, failing, order))).rejects.toThrow("outbox unavailable");
    expect(await balanceOf(user)).toBe(500);
    expect(await ledgerFor(order.order_id, "debit")).toEqual([]);

    // Redelivery after the failure still debits, once.
    expect((await debit(order)).map((m) => m.type)).toEqual(["StepSucceeded"]);
    expect(await balanceOf(user)).toBe(300);
    await expectLedgerMatchesBalance(user);
  });

  test("balances never go negative, even with orders racing for the same money", async () => {
    const user = newUser();
    await deposit(db, user, 1_000);
    const orders = Array.from({ length: 5 }, () => orderFor(user, 300));
    const outcomes = (await Promise.all(orders.map(debit))).flat();

    const succeeded = outcomes.filter((m) => m.type === "StepSucceeded");
    const rejected = outcomes.filter((m) => m.type === "OrderRejected");
    expect(succeeded).toHaveLength(3);
    expect(rejected).toHaveLength(2);
    for (const m of rejected) expect(m.payload).toMatchObject({ reason: "insufficient_funds" });
    expect(await balanceOf(user)).toBe(100);
    await expectLedgerMatchesBalance(user);

    // The database itself refuses a negative balance.
    await expect(
      db.transaction((tx) =>
        tx
          .update(wallets)
          .set({ balanceCents: sql`${wallets.balanceCents} - 101` })
          .where(eq(wallets.userId, user)),
      ),
    ).rejects.toThrow();
    expect(await balanceOf(user)).toBe(100);
  });
});

describe("refundOrder", () => {
  test("a rejection by another service refunds the debit exactly once", async () => {
    const user = newUser();
    await deposit(db, user, 1_000);
    const order = orderFor(user, 400);
    await debit(order);
    expect(await balanceOf(user)).toBe(600);

    expect(payloads(await refund(rejection(order.order_id, "storage", "out_of_stock")))).toEqual([
      { order_id: order.order_id, service: "wallet", action: "refunded", amount: 400 },
    ]);
    expect(await balanceOf(user)).toBe(1_000);
    // A second rejection (the registry's timeout, or a redelivery) refunds nothing more and says nothing more.
    expect(await refund(rejection(order.order_id, "registry", "timeout"))).toEqual([]);
    expect(await refund(rejection(order.order_id, "storage", "out_of_stock"))).toEqual([]);
    expect(await balanceOf(user)).toBe(1_000);

    const refunds = await ledgerFor(order.order_id, "refund");
    expect(refunds).toHaveLength(1);
    expect(refunds[0]).toMatchObject({ userId: user, amountCents: 400, balanceAfterCents: 1_000 });
    // A late redelivery of OrderCreated does not debit the refunded order again.
    expect(await debit(order)).toEqual([]);
    expect(await balanceOf(user)).toBe(1_000);
    await expectLedgerMatchesBalance(user);
  });

  test("a rejection that arrives before OrderCreated makes the later debit a no-op", async () => {
    const user = newUser();
    await deposit(db, user, 1_000);
    const order = orderFor(user, 250);

    expect(payloads(await refund(rejection(order.order_id, "storage", "unknown_product")))).toEqual([
      { order_id: order.order_id, service: "wallet", action: "nothing_to_undo", amount: 0 },
    ]);
    expect(await ledgerFor(order.order_id, "refund")).toEqual([]);
    expect(await debit(order)).toEqual([]);

    expect(await balanceOf(user)).toBe(1_000);
    expect(await ledgerFor(order.order_id, "debit")).toEqual([]);
    await expectLedgerMatchesBalance(user);
  });

  test("nothing is refunded for an order wallet rejected itself", async () => {
    const user = newUser();
    await deposit(db, user, 50);
    const order = orderFor(user, 60);
    expect(onlyRejection(await debit(order)).reason).toBe("insufficient_funds");

    // Its own rejection already told registry it did nothing: no second word.
    expect(await refund(rejection(order.order_id, "registry", "timeout"))).toEqual([]);
    expect(await balanceOf(user)).toBe(50);
    expect(await ledgerFor(order.order_id, "refund")).toEqual([]);
    await expectLedgerMatchesBalance(user);
  });

  test("refunds touch only the rejected order's wallet", async () => {
    const [a, b] = [newUser(), newUser()];
    await deposit(db, a, 500);
    await deposit(db, b, 500);
    const orderA = orderFor(a, 100);
    const orderB = orderFor(b, 200);
    await debit(orderA);
    await debit(orderB);

    await refund(rejection(orderA.order_id, "storage", "out_of_stock"));
    expect(await balanceOf(a)).toBe(500);
    expect(await balanceOf(b)).toBe(300);
    await expectLedgerMatchesBalance(a);
    await expectLedgerMatchesBalance(b);
  });
});

describe("debitOrders (a batch of OrderCreated in one transaction)", () => {
  const debitAll = (orders: OrderCreated[], requestIds: (string | undefined)[] = []) =>
    inTx(db, async (tx, enqueue) =>
      runAll(
        tx,
        await debitOrders(
          tx,
          enqueue,
          orders.map((order, i) => ({ order, cause: { request_id: requestIds[i] } })),
        ),
      ),
    );

  test("decides in delivery order on the running balance: each order is debited or rejected as if alone, after the ones before it", async () => {
    const [rich, poor, ghost] = [newUser(), newUser(), newUser()];
    await deposit(db, rich, 1_000);
    await deposit(db, poor, 100);
    const orders = [
      orderFor(rich, 600),
      orderFor(poor, 100),
      orderFor(rich, 500),
      orderFor(ghost, 1),
      orderFor(rich, 400),
      orderFor(poor, 1),
    ];
    const sent = await debitAll(orders, ["r1", undefined, "r3", "r4", "r5", "r6"]);
    expect(
      sent.map((m): unknown[] => [m.order_id, m.type, (m.payload as { reason?: string }).reason ?? null, m.request_id ?? null]),
    ).toEqual([
      [orders[0]?.order_id, "StepSucceeded", null, "r1"],
      [orders[1]?.order_id, "StepSucceeded", null, null],
      [orders[2]?.order_id, "OrderRejected", "insufficient_funds", "r3"],
      [orders[3]?.order_id, "OrderRejected", "unknown_wallet", "r4"],
      [orders[4]?.order_id, "StepSucceeded", null, "r5"],
      [orders[5]?.order_id, "OrderRejected", "insufficient_funds", "r6"],
    ]);
    expect(await balanceOf(rich)).toBe(0);
    expect(await balanceOf(poor)).toBe(0);
    expect((await ledgerOf(rich)).map((r) => [r.kind, r.amountCents, r.balanceAfterCents])).toEqual([
      ["deposit", 1_000, 1_000],
      ["debit", 600, 400],
      ["debit", 400, 0],
    ]);
    await expectLedgerMatchesBalance(rich);
    await expectLedgerMatchesBalance(poor);
    const remembered = await db.read((q) => q.select().from(rejectedOrders));
    for (const o of [orders[2], orders[3], orders[5]]) expect(remembered.some((r) => r.orderId === o?.order_id)).toBe(true);
  });

  test("one order twice in a batch (a replay under a new message id), or decided by an earlier batch: debited once", async () => {
    const user = newUser();
    await deposit(db, user, 1_000);
    const order = orderFor(user, 300);
    const sent = await debitAll([order, order]);
    expect(sent.map((m) => m.type)).toEqual(["StepSucceeded"]);
    expect(await debitAll([order, orderFor(user, 2_000), order])).toHaveLength(1);
    expect(await balanceOf(user)).toBe(700);
    expect(await ledgerFor(order.order_id, "debit")).toHaveLength(1);
    // An order rejected before its OrderCreated arrived: ignored, even in a batch.
    const late = orderFor(user, 1);
    await refund(rejection(late.order_id, "registry", "timeout"));
    expect(await debitAll([late])).toEqual([]);
    await expectLedgerMatchesBalance(user);
  });
});
