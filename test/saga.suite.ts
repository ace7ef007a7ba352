/**
 * The black-box saga suite: HTTP plus raw bus records only, so it runs unchanged against any
 * topology (one process or three, PGlite or PostgreSQL, memory bus or Kafka).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createMessage, type Message } from "../src/contracts";
import { eventually } from "./support/eventually";
import { adminHeaders, call, getJson } from "./support/http";
import { registerIf } from "./support/register-if";
import type { ShopTarget } from "./support/shop-target";

const PRICE = 1000; // every fixture product costs 10.00

/** How one topology runs the suite. */
interface SagaSuiteOptions {
  /** How long the topology may take to start. */
  timeoutMs?: number;
  /** Also run the cases no bus or database changes (validation, paging): set on one topology only. */
  topologyFree?: boolean;
}

/**
 * Registers the saga suite against the target made by `start`: what depends on the bus and the
 * database (orders completing, rejections, compensations, duplicates) on every topology; the
 * cases that answer alike everywhere only where `opts.topologyFree` is set.
 */
export function describeSaga(name: string, start: () => Promise<ShopTarget>, opts: SagaSuiteOptions = {}) {
  describe(`saga (${name})`, () => {
    const topologyFree = registerIf(opts.topologyFree === true);
    let t: ShopTarget;
    let nextProduct = 1;
    const product = () => nextProduct++;
    const user = () => 100_000 + Math.floor(Math.random() * 2_000_000_000 - 100_000);

    beforeAll(async () => {
      t = await start();
    }, opts.timeoutMs ?? 120_000);
    afterAll(async () => {
      await t?.stop();
    }, 60_000);

    const deposit = async (userId: number, cents: number) => {
      const r = await call(t.urls.wallet, "POST", `/wallets/${userId}/deposits`, { amount_cents: cents }, adminHeaders);
      expect(r.status).toBe(201);
    };
    const receive = async (productId: number, quantity: number) => {
      const r = await call(t.urls.storage, "POST", `/stock/${productId}/receipts`, { quantity }, adminHeaders);
      expect(r.status).toBe(201);
    };
    const balance = async (userId: number) => (await getJson(t.urls.wallet, `/wallets/${userId}`)).balance_cents as number;
    const stockOf = async (productId: number) => {
      const s = await getJson(t.urls.storage, `/stock/${productId}`);
      return { available: s.available as number, reserved: s.reserved as number };
    };
    const order = async (userId: number, items: { product_id: number; quantity: number }[]) => {
      const r = await call(t.urls.registry, "POST", "/orders", { user_id: userId, items });
      expect(r.status).toBe(201);
      expect(r.body.status).toBe("pending");
      return r.body as { id: string; total_cents: number };
    };
    const settled = async (id: string) =>
      eventually(async () => {
        const o = await getJson(t.urls.registry, `/orders/${id}`);
        if (o.status === "pending") throw new Error(`order ${id} still pending`);
        // Final means final: a rejected order is closed once wallet and storage confirmed their undoing.
        if (o.status === "rejected" && o.compensation !== "done") throw new Error(`order ${id} rejected, compensation ${o.compensation}`);
        return o;
      }, 60_000);
    const send = (m: Message, key = m.order_id) =>
      t.publish(
        m.type === "OrderCreated" ? t.topics.new_orders : m.type === "StepSucceeded" ? t.topics.success : t.topics.rejected_orders,
        key,
        JSON.stringify(m),
      );
    const consumed = async (base: string) => {
      const text = await (await fetch(`${base}/metrics`)).text();
      const read = (outcome: string) =>
        Number(text.match(new RegExp(`shop_messages_consumed_total\\{outcome="${outcome}"\\} (\\d+)`))?.[1] ?? NaN);
      return { processed: read("processed"), duplicates: read("duplicates"), dead: read("dead") };
    };
    const ledgerFor = async (userId: number, orderId: string) =>
      ((await getJson(t.urls.wallet, `/wallets/${userId}`)).ledger as { order_id: string | null; kind: string }[]).filter(
        (e) => e.order_id === orderId,
      );

    test("a paid, reserved order completes; balance and stock move by exactly the order", async () => {
      const u = user();
      const [p1, p2] = [product(), product()];
      await deposit(u, 10_000);
      await receive(p1, 5);
      await receive(p2, 5);
      const placed = await order(u, [
        { product_id: p1, quantity: 2 },
        { product_id: p2, quantity: 1 },
      ]);
      expect(placed.total_cents).toBe(3 * PRICE);
      const done = await settled(placed.id);
      expect(done.status).toBe("completed");
      expect(done.reason).toBeNull();
      expect(await balance(u)).toBe(10_000 - 3 * PRICE);
      expect(await stockOf(p1)).toEqual({ available: 3, reserved: 2 });
      expect(await stockOf(p2)).toEqual({ available: 4, reserved: 1 });
      const steps = (done.timeline as { step: string; service: string }[]).map((e) => `${e.service}:${e.step}`);
      expect(steps[0]).toBe("registry:created");
      expect(steps).toContain("wallet:paid");
      expect(steps).toContain("storage:reserved");
      expect(steps.at(-1)).toBe("registry:completed");
      expect(await ledgerFor(u, placed.id)).toEqual([expect.objectContaining({ kind: "debit" })]);
    });

    test("insufficient funds: rejected, and the stock comes back", async () => {
      const u = user();
      const p = product();
      await deposit(u, PRICE - 1);
      await receive(p, 3);
      const placed = await order(u, [{ product_id: p, quantity: 1 }]);
      const done = await settled(placed.id);
      expect(done.status).toBe("rejected");
      expect(done.reason).toBe("insufficient_funds");
      // Closed only once storage confirmed: nothing to wait for after that.
      expect(await stockOf(p)).toEqual({ available: 3, reserved: 0 });
      expect(await balance(u)).toBe(PRICE - 1);
      const steps = (done.timeline as { service: string; step: string }[]).map((e) => `${e.service}:${e.step}`);
      expect(steps).toContain("wallet:rejected");
      // Storage may have reserved before it heard of the rejection, or not: either way it said what it undid.
      expect(steps.filter((s) => s === "storage:released" || s === "storage:nothing_to_undo")).toHaveLength(1);
    });

    test("out of stock: rejected, and the money comes back", async () => {
      const u = user();
      const p = product();
      await deposit(u, 50_000);
      await receive(p, 1);
      const placed = await order(u, [{ product_id: p, quantity: 2 }]);
      const done = await settled(placed.id);
      expect(done.status).toBe("rejected");
      expect(done.reason).toBe("out_of_stock");
      expect(await balance(u)).toBe(50_000);
      const steps = (done.timeline as { service: string; step: string }[]).map((e) => `${e.service}:${e.step}`);
      expect(steps.filter((s) => s === "wallet:refunded" || s === "wallet:nothing_to_undo")).toHaveLength(1);
      expect(await stockOf(p)).toEqual({ available: 1, reserved: 0 });
    });

    test("unknown user: rejected with unknown_wallet, nothing held", async () => {
      const p = product();
      await receive(p, 2);
      const placed = await order(user(), [{ product_id: p, quantity: 1 }]);
      const done = await settled(placed.id);
      expect(done.status).toBe("rejected");
      expect(done.reason).toBe("unknown_wallet");
      expect(await stockOf(p)).toEqual({ available: 2, reserved: 0 });
    });

    topologyFree("unknown product: 422 naming the item, no order stored", async () => {
      const u = user();
      await deposit(u, 5000);
      const r = await call(t.urls.registry, "POST", "/orders", { user_id: u, items: [{ product_id: 999_999, quantity: 1 }] });
      expect(r.status).toBe(422);
      expect(r.body.error).toMatchObject({ code: "unknown_product", field: "items.0.product_id" });
      expect((await getJson(t.urls.registry, `/orders?user_id=${u}`)).orders).toEqual([]);
      expect(await balance(u)).toBe(5000);
    });

    test("each message type delivered twice has its effect once", async () => {
      const u = user();
      const p = product();
      await deposit(u, 10_000);
      await receive(p, 10);
      const orderId = crypto.randomUUID();
      const created = createMessage("OrderCreated", {
        order_id: orderId,
        user_id: u,
        items: [{ product_id: p, quantity: 3, unit_price_cents: PRICE }],
        total_cents: 3 * PRICE,
      });
      await send(created);
      await send(created); // the same envelope again (a relay that published twice)
      await send({ ...created, id: crypto.randomUUID() }); // the same order under a new envelope id
      await eventually(async () => expect(await stockOf(p)).toEqual({ available: 7, reserved: 3 }));
      await eventually(async () => expect(await balance(u)).toBe(10_000 - 3 * PRICE));

      const rejected = createMessage("OrderRejected", { order_id: orderId, service: "registry", reason: "timeout", message: "test" });
      await send(rejected);
      await send(rejected);
      await send({ ...rejected, id: crypto.randomUUID() });
      await eventually(async () => expect(await stockOf(p)).toEqual({ available: 10, reserved: 0 }));
      await eventually(async () => expect(await balance(u)).toBe(10_000));
      const kinds = (await ledgerFor(u, orderId)).map((e) => e.kind).sort();
      expect(kinds).toEqual(["debit", "refund"]);

      // StepSucceeded again for a completed order, twice: completed once, effects once.
      const p2 = product();
      await receive(p2, 1);
      const real = await order(u, [{ product_id: p2, quantity: 1 }]);
      expect((await settled(real.id)).status).toBe("completed");
      const before = await consumed(t.urls.registry);
      const success = createMessage("StepSucceeded", { order_id: real.id, service: "wallet" });
      await send(success);
      await send(success);
      await eventually(async () => {
        const now = await consumed(t.urls.registry);
        expect(now.processed - before.processed).toBe(1);
        expect(now.duplicates - before.duplicates).toBe(1);
      });
      const after = await getJson(t.urls.registry, `/orders/${real.id}`);
      expect(after.status).toBe("completed");
      const steps = (after.timeline as { step: string }[]).map((e) => e.step);
      expect(steps.filter((s) => s === "paid")).toHaveLength(1);
      expect(steps.filter((s) => s === "completed")).toHaveLength(1);
      expect(await balance(u)).toBe(10_000 - PRICE);
    });

    test("a rejection that arrives before the creation: the late creation is ignored", async () => {
      const u = user();
      const p = product();
      await deposit(u, 10_000);
      await receive(p, 5);
      const lateId = crypto.randomUUID();
      const [w0, s0] = [await consumed(t.urls.wallet), await consumed(t.urls.storage)];
      await send(createMessage("OrderRejected", { order_id: lateId, service: "registry", reason: "timeout", message: "test" }));
      await eventually(async () => {
        expect((await consumed(t.urls.wallet)).processed).toBe(w0.processed + 1);
        expect((await consumed(t.urls.storage)).processed).toBe(s0.processed + 1);
      });
      await send(
        createMessage("OrderCreated", {
          order_id: lateId,
          user_id: u,
          items: [{ product_id: p, quantity: 2, unit_price_cents: PRICE }],
          total_cents: 2 * PRICE,
        }),
      );
      await eventually(async () => {
        expect((await consumed(t.urls.wallet)).processed).toBe(w0.processed + 2);
        expect((await consumed(t.urls.storage)).processed).toBe(s0.processed + 2);
      });
      expect(await stockOf(p)).toEqual({ available: 5, reserved: 0 });
      expect(await balance(u)).toBe(10_000);
      expect(await ledgerFor(u, lateId)).toEqual([]);
    });

    test("a malformed record is set aside and the consumers go on", async () => {
      await t.publish(t.topics.new_orders, "junk", "not json at all");
      await t.publish(t.topics.rejected_orders, "junk", JSON.stringify({ id: "x", type: "OrderRejected" }));
      await t.publish(
        t.topics.success,
        "junk",
        JSON.stringify(createMessage("StepSucceeded", { order_id: crypto.randomUUID(), service: "wallet" })).replace(
          '"wallet"',
          '"nobody"',
        ),
      );
      await t.publish(
        t.topics.new_orders,
        "junk",
        JSON.stringify({ ...createMessage("StepSucceeded", { order_id: crypto.randomUUID(), service: "wallet" }), type: "Unknown" }),
      );
      const u = user();
      const p = product();
      await deposit(u, 5000);
      await receive(p, 1);
      const placed = await order(u, [{ product_id: p, quantity: 1 }]);
      expect((await settled(placed.id)).status).toBe("completed");
      for (const base of Object.values(t.urls)) expect((await consumed(base)).dead).toBeGreaterThan(0);
    });

    test("many concurrent orders for little stock and small balances: nothing negative, everything conserved", async () => {
      const users = [user(), user(), user(), user()];
      const [pa, pb] = [product(), product()];
      for (const u of users) await deposit(u, 2500); // two or three items each at most
      await receive(pa, 4);
      await receive(pb, 3);
      const placed = await Promise.all(
        Array.from({ length: 24 }, (_, i) =>
          order(users[i % users.length] as number, [{ product_id: i % 3 === 0 ? pb : pa, quantity: 1 + (i % 2) }]),
        ),
      );
      const final = await Promise.all(placed.map((o) => settled(o.id)));
      expect(final.every((o) => o.status === "completed" || o.status === "rejected")).toBe(true);
      const completed = final.filter((o) => o.status === "completed");
      const units = (pid: number) =>
        completed
          .flatMap((o) => o.items as { product_id: number; quantity: number }[])
          .filter((i) => i.product_id === pid)
          .reduce((s, i) => s + i.quantity, 0);
      // Every order is final with its compensations confirmed: the books balance now, not eventually.
      const [a, b] = [await stockOf(pa), await stockOf(pb)];
      expect(a).toEqual({ available: 4 - units(pa), reserved: units(pa) });
      expect(b).toEqual({ available: 3 - units(pb), reserved: units(pb) });
      const balances = await Promise.all(users.map(balance));
      expect(balances.every((b) => b >= 0)).toBe(true);
      for (const [i, u] of users.entries()) {
        const spent = completed.filter((o) => o.user_id === u).reduce((s, o) => s + o.total_cents, 0);
        expect(balances[i]).toBe(2500 - spent);
      }
      // Not "some completed": wallet and storage drain the partitions in their own interleaving,
      // so the orders one accepts and the other accepts may not overlap at all.
      expect(completed.length).toBeLessThan(final.length);
    });

    topologyFree("orders list newest first with a cursor", async () => {
      const u = user();
      const p = product();
      await deposit(u, 100_000);
      await receive(p, 10);
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await order(u, [{ product_id: p, quantity: 1 }])).id);
      const first = await getJson(t.urls.registry, `/orders?user_id=${u}&limit=2`);
      expect(first.orders.map((o: { id: string }) => o.id)).toEqual([ids[4], ids[3]]);
      const second = await getJson(t.urls.registry, `/orders/?user_id=${u}&limit=2&cursor=${first.next_cursor}`);
      expect(second.orders.map((o: { id: string }) => o.id)).toEqual([ids[2], ids[1]]);
      const third = await getJson(t.urls.registry, `/orders?user_id=${u}&limit=2&cursor=${second.next_cursor}`);
      expect(third.orders.map((o: { id: string }) => o.id)).toEqual([ids[0]]);
      expect(third.next_cursor).toBeNull();
      await Promise.all(ids.map(settled));
    });

    test("health answers within its timeout on every service", async () => {
      for (const base of Object.values(t.urls)) {
        const r = await call(base, "GET", "/health?timeout=5");
        expect(r.status).toBe(200);
        expect(r.body).toMatchObject({ status: "ok", checks: { database: { status: "ok" }, bus: { status: "ok" } } });
      }
    });
  });
}
