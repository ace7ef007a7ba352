/**
 * Dead letters and their redrive. First the rules, on one module's consumer and its admin routes
 * (PGlite); then test 6 of issue 8 on the split deployment: a message dead-lettered by a
 * transient fault (wallet's ledger table renamed away) is redriven once the fault is gone and
 * applied exactly once; a forged malformed record cannot be redriven and changes nothing.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { count, eq, sql } from "drizzle-orm";
import postgres from "postgres";
import { walletModule } from "../modules/wallet/index";
import * as tables from "../modules/wallet/schema";
import type { BusRecord } from "../src/bus/bus";
import { createMessage, type OrderCreated } from "../src/contracts";
import type { Database } from "../src/db/database";
import { errorHandler } from "../src/http/errors";
import { createRouter } from "../src/http/router";
import { createLogger } from "../src/log";
import { adminRouter } from "../src/messaging/admin";
import { createMessageConsumer, MAX_ATTEMPTS } from "../src/messaging/message-consumer";
import { outboxWriter } from "../src/messaging/outbox";
import { eventually } from "./support/eventually";
import { adminHeaders, call, getJson } from "./support/http";
import { openModuleDatabase } from "./support/module-db";
import { startShopProcess } from "./support/process";
import { TOPICS } from "./support/shop-target";
import { type SplitShop, startSplitShop } from "./support/split-shop";

const log = createLogger("silent");

describe("redrive rules (one module, PGlite)", () => {
  let db: Database;
  let broken = true;
  beforeAll(async () => {
    db = await openModuleDatabase(walletModule);
  });
  afterAll(() => db?.close());

  /** A consumer whose OrderCreated effect is one ledger row and one StepSucceeded; it throws while `broken`. */
  const consumer = () =>
    createMessageConsumer({
      db,
      group: "redrive-test",
      tables,
      outbox: outboxWriter(tables, TOPICS, () => {}),
      log,
      consumers: {
        handlers: {
          OrderCreated: async (tx, m, enqueue) => {
            if (broken) throw new Error("ledger unavailable");
            await tx
              .insert(tables.ledger)
              .values({ userId: m.payload.user_id, orderId: m.order_id, kind: "debit", amountCents: 1, balanceAfterCents: 0 });
            await enqueue(tx, createMessage("StepSucceeded", { order_id: m.order_id, service: "wallet" }));
          },
        },
      },
    });
  let c: ReturnType<typeof consumer>;
  const app = createRouter();
  app.onError(errorHandler(log));
  beforeAll(() => {
    c = consumer();
    app.route("/", adminRouter({ db, table: tables.deadLetters, consumer: c, inboxWindowMs: 168 * 3600 * 1000, log }));
  });
  const request = async (method: string, path: string) => {
    const res = await app.request(path, { method });
    return { status: res.status, body: (await res.json()) as any };
  };
  const redrive = (id: number) => request("POST", `/admin/dead-letters/${id}/redrive`);

  const created = () => {
    const payload: OrderCreated = {
      order_id: crypto.randomUUID(),
      user_id: 4242,
      items: [{ product_id: 1, quantity: 1, unit_price_cents: 1 }],
      total_cents: 1,
    };
    return createMessage("OrderCreated", payload);
  };
  const record = (value: string, key: string): BusRecord => ({ topic: TOPICS.new_orders, key, value, headers: { "message-id": "m" } });
  /** Delivers a record that fails until it is dead-lettered; returns its dead letter. */
  const deadLetter = async (r: BusRecord) => {
    for (let i = 0; i < MAX_ATTEMPTS && (await c.handle([r])) === 0; i++);
    const [row] = await db.read((q) =>
      q.select().from(tables.deadLetters).where(eq(tables.deadLetters.key, r.key)).orderBy(sql`id desc`).limit(1),
    );
    if (!row) throw new Error("not dead-lettered");
    return row;
  };
  const effects = async (orderId: string) => {
    const [l] = await db.read((q) => q.select({ n: count() }).from(tables.ledger).where(eq(tables.ledger.orderId, orderId)));
    const [o] = await db.read((q) => q.select({ n: count() }).from(tables.outbox).where(eq(tables.outbox.key, orderId)));
    const [i] = await db.read((q) => q.select({ n: count() }).from(tables.inbox).where(eq(tables.inbox.type, "OrderCreated")));
    return { ledger: l?.n, outbox: o?.n, inbox: i?.n };
  };

  test("a failing handler's message: 409 while it still fails, applied once when fixed, then already_resolved", async () => {
    broken = true;
    const m = created();
    const letter = await deadLetter(record(JSON.stringify(m), m.order_id));
    expect(letter.error).toBe(`handler failed ${MAX_ATTEMPTS} times: ledger unavailable`);
    const inboxBefore = (await effects(m.order_id)).inbox;

    const failed = await redrive(letter.id);
    expect(failed.status).toBe(409);
    expect(failed.body.error.code).toBe("redrive_failed");
    expect(failed.body.error.message).toContain("ledger unavailable");
    const listed = await request("GET", "/admin/dead-letters");
    const after = listed.body.dead_letters.find((d: { id: number }) => d.id === letter.id);
    expect(after).toMatchObject({ state: "dead", redrives: 1, resolved_at: null, error: "redrive failed: ledger unavailable" });
    expect(after.last_redrive_at).not.toBeNull();
    expect(await effects(m.order_id)).toEqual({ ledger: 0, outbox: 0, inbox: inboxBefore });

    broken = false;
    const ok = await redrive(letter.id);
    expect(ok.status).toBe(200);
    expect(ok.body.outcome).toBe("applied");
    expect(ok.body.dead_letter).toMatchObject({ id: letter.id, state: "resolved", redrives: 2, topic: TOPICS.new_orders, key: m.order_id });
    expect(ok.body.dead_letter.resolved_at).not.toBeNull();
    expect(await effects(m.order_id)).toEqual({ ledger: 1, outbox: 1, inbox: (inboxBefore ?? 0) + 1 });

    const again = await redrive(letter.id);
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("already_resolved");
    expect(await effects(m.order_id)).toEqual({ ledger: 1, outbox: 1, inbox: (inboxBefore ?? 0) + 1 });
  });

  test("a message applied since (another dead letter of it was redriven) resolves as a duplicate", async () => {
    broken = true;
    const m = created();
    const first = await deadLetter(record(JSON.stringify(m), m.order_id));
    const second = await deadLetter(record(JSON.stringify(m), m.order_id)); // delivered again, failed again
    expect(second.id).not.toBe(first.id);
    broken = false;
    expect((await redrive(first.id)).body.outcome).toBe("applied");
    const dup = await redrive(second.id);
    expect(dup.status).toBe(200);
    expect(dup.body.outcome).toBe("duplicate");
    expect(dup.body.dead_letter.state).toBe("resolved");
    expect((await effects(m.order_id)).ledger).toBe(1);
  });

  test("a record that is still not a valid message: 422, only the attempt is counted", async () => {
    const key = crypto.randomUUID();
    const letter = await deadLetter(record("{not json", key));
    const r = await redrive(letter.id);
    expect(r.status).toBe(422);
    expect(r.body.error.code).toBe("invalid_message");
    const [row] = await db.read((q) => q.select().from(tables.deadLetters).where(eq(tables.deadLetters.id, letter.id)));
    expect(row).toMatchObject({ redrives: 1, resolvedAt: null, error: "redrive: not JSON", value: "{not json" });
  });

  test("unknown ids, bad ids, letters past the inbox window", async () => {
    expect((await redrive(999_999)).body.error.code).toBe("unknown_dead_letter");
    expect((await redrive(999_999)).status).toBe(404);
    expect((await request("POST", "/admin/dead-letters/abc/redrive")).status).toBe(400);
    broken = true;
    const m = created();
    const letter = await deadLetter(record(JSON.stringify(m), m.order_id));
    broken = false;
    await db.autocommit((q) =>
      q.update(tables.deadLetters).set({ receivedAt: sql`now() - interval '169 hours'` }).where(eq(tables.deadLetters.id, letter.id)),
    );
    const r = await redrive(letter.id);
    expect(r.status).toBe(409);
    expect(r.body.error.code).toBe("redrive_window_passed");
    expect((await effects(m.order_id)).ledger).toBe(0);
  });

  test("the listing: newest first, filtered by state, a page at a time", async () => {
    const all = (await request("GET", "/admin/dead-letters?state=all&limit=100")).body.dead_letters as { id: number; state: string }[];
    const ids = all.map((d) => d.id);
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    const dead = (await request("GET", "/admin/dead-letters?limit=100")).body.dead_letters as { state: string }[];
    const resolved = (await request("GET", "/admin/dead-letters?state=resolved&limit=100")).body.dead_letters as { state: string }[];
    expect(dead.every((d) => d.state === "dead")).toBe(true);
    expect(resolved.every((d) => d.state === "resolved")).toBe(true);
    expect(dead.length + resolved.length).toBe(all.length);
    expect(resolved.length).toBeGreaterThanOrEqual(2);

    const pages: number[] = [];
    let cursor: string | null = null;
    do {
      const page: { status: number; body: any } = await request(
        "GET",
        `/admin/dead-letters?state=all&limit=2${cursor ? `&cursor=${cursor}` : ""}`,
      );
      expect(page.status).toBe(200);
      pages.push(...page.body.dead_letters.map((d: { id: number }) => d.id));
      cursor = page.body.next_cursor;
    } while (cursor);
    expect(pages).toEqual(ids);
    expect((await request("GET", "/admin/dead-letters?state=gone")).status).toBe(400);
    expect((await request("GET", "/admin/dead-letters?limit=0")).status).toBe(400);
  });
});

describe("test 6: redrive on the split deployment (Kafka, PostgreSQL, three processes)", () => {
  let shop: SplitShop;
  let pg: postgres.Sql;
  const USER = 8601;
  const PRODUCT = 86;

  beforeAll(async () => {
    // The order waits for wallet while its record is dead: a deadline far away keeps it pending.
    shop = await startSplitShop({ REGISTRY_SAGA_DEADLINE_SECONDS: "900" });
    pg = postgres(shop.databaseUrl, { max: 1, onnotice: () => {} });
  }, 180_000);
  afterAll(async () => {
    await pg?.end();
    await shop?.stop();
  }, 60_000);

  const admin = (base: string, method: string, path: string) => call(base, method, path, undefined, { ...adminHeaders });
  const deadLetters = async (state: string) =>
    (await admin(shop.urls.wallet, "GET", `/admin/dead-letters?state=${state}&limit=100`)).body.dead_letters as any[];
  const metric = async (base: string, name: string) => {
    const text = await (await fetch(`${base}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith(`${name} `));
    return line === undefined ? null : Number(line.slice(name.length + 1));
  };
  const walletFacts = async (orderId: string) => {
    const [row] = await pg`select
        (select count(*)::int from wallet.ledger where order_id = ${orderId} and kind = 'debit') as debits,
        (select count(*)::int from wallet.outbox where key = ${orderId} and type = 'StepSucceeded') as successes,
        (select balance_cents::int from wallet.wallets where user_id = ${USER}) as balance`;
    return row as { debits: number; successes: number; balance: number };
  };

  test("a message dead-lettered by a transient fault is redriven and applied once", async () => {
    expect((await call(shop.urls.wallet, "POST", `/wallets/${USER}/deposits`, { amount_cents: 5000 }, { ...adminHeaders })).status).toBe(
      201,
    );
    expect((await call(shop.urls.storage, "POST", `/stock/${PRODUCT}/receipts`, { quantity: 5 }, { ...adminHeaders })).status).toBe(201);

    // The fault: wallet's handler fails (not a lost connection) on every attempt.
    await pg`alter table wallet.ledger rename to ledger_broken`;
    const placed = await call(shop.urls.registry, "POST", "/orders", { user_id: USER, items: [{ product_id: PRODUCT, quantity: 1 }] });
    expect(placed.status).toBe(201);
    const orderId: string = placed.body.id;
    const letter = await eventually(async () => (await deadLetters("dead")).find((d) => d.key === orderId) ?? false, 90_000, 200);
    expect(letter).toMatchObject({ state: "dead", topic: shop.topics.new_orders, redrives: 0, resolved_at: null });
    expect(letter.error).toMatch(/^handler failed 5 times: .*ledger/);
    expect(JSON.parse(letter.value)).toMatchObject({ type: "OrderCreated", order_id: orderId });
    expect(letter.headers["message-type"]).toBe("OrderCreated");
    expect(await metric(shop.urls.wallet, `shop_dead_letters{topic="${shop.topics.new_orders}",state="dead"}`)).toBe(1);

    // Redriven while the fault lasts: 409, the attempt counted, nothing else.
    const early = await admin(shop.urls.wallet, "POST", `/admin/dead-letters/${letter.id}/redrive`);
    expect(early.status).toBe(409);
    expect(early.body.error.code).toBe("redrive_failed");
    expect((await deadLetters("dead")).find((d) => d.id === letter.id)).toMatchObject({ redrives: 1 });

    // The fault is gone: the redrive applies it, once.
    await pg`alter table wallet.ledger_broken rename to ledger`;
    expect(await walletFacts(orderId)).toEqual({ debits: 0, successes: 0, balance: 5000 });
    const ok = await admin(shop.urls.wallet, "POST", `/admin/dead-letters/${letter.id}/redrive`);
    expect(ok.status).toBe(200);
    expect(ok.body.outcome).toBe("applied");
    expect(ok.body.dead_letter).toMatchObject({ id: letter.id, state: "resolved", redrives: 2 });
    const order = await eventually(async () => {
      const o = await getJson(shop.urls.registry, `/orders/${orderId}`);
      return o.status === "pending" ? false : o;
    }, 60_000);
    expect(order.status).toBe("completed");
    expect(await walletFacts(orderId)).toEqual({ debits: 1, successes: 1, balance: 4000 });

    // A second redrive does not apply it again.
    const again = await admin(shop.urls.wallet, "POST", `/admin/dead-letters/${letter.id}/redrive`);
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("already_resolved");
    expect(await walletFacts(orderId)).toEqual({ debits: 1, successes: 1, balance: 4000 });
    expect((await getJson(shop.urls.registry, `/orders/${orderId}`)).status).toBe("completed");
  }, 180_000);

  test("a forged malformed record is dead-lettered; its redrive answers 422 and changes nothing", async () => {
    const key = crypto.randomUUID();
    await shop.publish(shop.topics.new_orders, key, "{ forged, not json");
    const letter = await eventually(async () => (await deadLetters("dead")).find((d) => d.key === key) ?? false, 60_000, 200);
    const before =
      await pg`select (select count(*)::int from wallet.inbox) as inbox, (select count(*)::int from wallet.outbox) as outbox, (select count(*)::int from wallet.ledger) as ledger`;
    const r = await admin(shop.urls.wallet, "POST", `/admin/dead-letters/${letter.id}/redrive`);
    expect(r.status).toBe(422);
    expect(r.body.error.code).toBe("invalid_message");
    expect((await deadLetters("dead")).find((d) => d.id === letter.id)).toMatchObject({
      state: "dead",
      redrives: 1,
      value: "{ forged, not json",
    });
    const after =
      await pg`select (select count(*)::int from wallet.inbox) as inbox, (select count(*)::int from wallet.outbox) as outbox, (select count(*)::int from wallet.ledger) as ledger`;
    expect(after).toEqual(before);
    expect((await call(shop.urls.wallet, "GET", "/admin/dead-letters")).status).toBe(401); // no token, no listing
  }, 120_000);

  test("/metrics counts dead letters from the table: a restarted wallet still reports them", async () => {
    const topic = shop.topics.new_orders;
    expect(await shop.processes.wallet.stop("SIGTERM")).toBe(0);
    shop.processes.wallet = await startShopProcess(
      ["--modules", "wallet"],
      { ...shop.env, WALLET_PORT: new URL(shop.urls.wallet).port },
      1,
    );
    expect(await metric(shop.urls.wallet, `shop_dead_letters{topic="${topic}",state="dead"}`)).toBe(1);
    expect(await metric(shop.urls.wallet, `shop_dead_letters{topic="${topic}",state="resolved"}`)).toBe(1);
    // The per-process rate starts again from zero.
    expect(await metric(shop.urls.wallet, 'shop_messages_consumed_total{outcome="dead"}')).toBe(0);
  }, 120_000);
});
