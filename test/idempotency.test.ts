/**
 * `Idempotency-Key` on `POST /orders`, on PGlite and on PostgreSQL: 200 concurrent identical
 * requests make one order (one debit, one reservation), a reused key with another body is
 * refused, a bad key is a 400, expired keys are pruned; on PostgreSQL, a second transaction
 * claiming a key waits for the first and then sees its answer (or wins if it rolled back).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { type Database, openDatabase } from "../src/db/database";
import { createLogger } from "../src/log";
import {
  AlreadyAnswered,
  claimKey,
  type KeyedRequest,
  pruneIdempotencyKeys,
  recordAnswer,
  requestHash,
} from "../modules/registry/idempotency";
import { createCatalogue } from "../modules/registry/catalogue";
import { placeOrder } from "../modules/registry/service";
import { deadLetters as registryDeadLetters, inbox as registryInbox, outbox as registryOutbox } from "../modules/registry/schema";
import { captureOutbox } from "./support/module-db";
import { eventually } from "./support/eventually";
import { adminHeaders, call, getJson } from "./support/http";
import { type PostgresCluster, startPostgresCluster } from "./support/postgres-cluster";
import { createDatabase, type ShopTarget, startInProcess } from "./support/shop-target";

const PRICE = 1000; // every fixture product costs 10.00
const CONCURRENT = 200;

let cluster: PostgresCluster | null = null;
afterAll(async () => {
  await cluster?.stop();
});
const postgresUrl = async () => createDatabase((cluster ??= await startPostgresCluster({ name: "idempotency" })).url);

const backends: [string, () => Promise<Record<string, string>>][] = [
  ["PGlite", async () => ({})],
  ["PostgreSQL", async () => ({ DATABASE_URL: await postgresUrl() })],
];

describe.each(backends)("Idempotency-Key on POST /orders (%s)", (_name, env) => {
  let t: ShopTarget & { shop: { db: Database } };
  let lastProduct = 0;
  const product = () => ++lastProduct;
  const user = () => 100_000 + Math.floor(Math.random() * 2_000_000_000);
  beforeAll(async () => {
    t = await startInProcess(await env());
  }, 120_000);
  afterAll(() => t?.stop(), 60_000);

  const post = (body: unknown, key?: string) =>
    call(t.urls.registry, "POST", "/orders", body, key === undefined ? {} : { "Idempotency-Key": key });
  const ordersOf = async (userId: number) => (await getJson(t.urls.registry, `/orders?user_id=${userId}`)).orders as { id: string }[];

  test(`${CONCURRENT} concurrent identical requests with one key: one order, one debit, one reservation`, async () => {
    const [u, p] = [user(), product()];
    expect((await call(t.urls.wallet, "POST", `/wallets/${u}/deposits`, { amount_cents: 10 * PRICE }, adminHeaders)).status).toBe(201);
    expect((await call(t.urls.storage, "POST", `/stock/${p}/receipts`, { quantity: 10 }, adminHeaders)).status).toBe(201);
    const body = { user_id: u, items: [{ product_id: p, quantity: 1 }] };
    const key = crypto.randomUUID();

    const answers = await Promise.all(Array.from({ length: CONCURRENT }, () => post(body, key)));
    expect(answers.map((a) => a.status)).toEqual(Array(CONCURRENT).fill(201));
    const ids = new Set(answers.map((a) => a.body.id));
    expect(ids.size).toBe(1);
    const original = answers.filter((a) => a.headers.get("idempotent-replayed") === null);
    expect(original).toHaveLength(1);
    const replays = answers.filter((a) => a.headers.get("idempotent-replayed") === "true");
    expect(replays).toHaveLength(CONCURRENT - 1);
    for (const r of replays) expect(r.body).toEqual(original[0]?.body);
    expect(original[0]?.body).toMatchObject({ user_id: u, status: "pending", total_cents: PRICE });

    const [id] = [...ids] as [string];
    expect((await ordersOf(u)).map((o) => o.id)).toEqual([id]);
    await eventually(async () => (await getJson(t.urls.registry, `/orders/${id}`)).status === "completed", 60_000);
    const wallet = await getJson(t.urls.wallet, `/wallets/${u}`);
    expect(wallet.balance_cents).toBe(9 * PRICE);
    expect((wallet.ledger as { kind: string }[]).filter((e) => e.kind === "debit")).toHaveLength(1);
    expect(await getJson(t.urls.storage, `/stock/${p}`)).toMatchObject({ available: 9, reserved: 1 });

    // Later, the same key still answers the order as first answered (pending), and places nothing.
    const later = await post(body, key);
    expect(later.status).toBe(201);
    expect(later.headers.get("idempotent-replayed")).toBe("true");
    expect(later.body).toEqual(original[0]?.body);
    expect(await ordersOf(u)).toHaveLength(1);
  }, 180_000);

  test(`placeOrder itself, ${CONCURRENT} at once with one key and no lookup first: one order, the rest get its answer`, async () => {
    // Over HTTP, most duplicates may be answered by the lookup before admission; here every one
    // reaches the transaction, so the claim alone must hold (PGlite: one transaction at a time;
    // PostgreSQL: the insert waits for the holder of the key).
    const db = t.shop.db;
    const u = user();
    const lines = [{ product_id: product(), quantity: 1 }];
    const keyed = { key: crypto.randomUUID(), hash: requestHash(u, lines) };
    const { sent, outbox } = captureOutbox({ outbox: registryOutbox, inbox: registryInbox, deadLetters: registryDeadLetters });
    const catalogue = createCatalogue(db);
    const outcomes = await Promise.all(
      Array.from({ length: CONCURRENT }, () =>
        placeOrder(db, catalogue, outbox, u, lines, keyed).then(
          (order) => ({ placed: order }),
          (err: unknown) => ({ err }),
        ),
      ),
    );
    const placed = outcomes.flatMap((o) => ("placed" in o ? [o.placed] : []));
    const answered = outcomes.flatMap((o) => ("err" in o && o.err instanceof AlreadyAnswered ? [o.err.answer] : []));
    expect(placed).toHaveLength(1);
    expect(answered).toHaveLength(CONCURRENT - 1);
    for (const a of answered) expect(a).toEqual({ statusCode: 201, body: placed[0] });
    expect(sent.filter((m) => m.type === "OrderCreated")).toHaveLength(1);
    expect((await ordersOf(u)).map((o) => o.id)).toEqual([placed[0]?.id as string]);
  }, 120_000);

  test("the same key with another body: 422 idempotency_key_reused, nothing created", async () => {
    const [u, other, p] = [user(), user(), product()];
    const key = `order-${crypto.randomUUID()}`;
    const first = await post({ user_id: u, items: [{ product_id: p, quantity: 1 }] }, key);
    expect(first.status).toBe(201);
    for (const body of [
      { user_id: u, items: [{ product_id: p, quantity: 2 }] },
      { user_id: other, items: [{ product_id: p, quantity: 1 }] },
      { user_id: u, items: [{ product_id: p, quantity: 1 }, { product_id: product(), quantity: 1 }] },
    ]) {
      const r = await post(body, key);
      expect(r.status).toBe(422);
      expect(r.body).toEqual({ error: { code: "idempotency_key_reused", message: expect.any(String), field: "Idempotency-Key" } });
    }
    expect((await ordersOf(u)).map((o) => o.id)).toEqual([first.body.id]);
    expect(await ordersOf(other)).toEqual([]);
  });

  test("items in another order are another request", async () => {
    const [u, a, b] = [user(), product(), product()];
    const key = crypto.randomUUID();
    const items = [{ product_id: a, quantity: 1 }, { product_id: b, quantity: 1 }];
    expect((await post({ user_id: u, items }, key)).status).toBe(201);
    expect((await post({ user_id: u, items: [...items].reverse() }, key)).status).toBe(422);
  });

  test("a bad key is a 400 naming the header, and places nothing", async () => {
    const u = user();
    const body = { user_id: u, items: [{ product_id: product(), quantity: 1 }] };
    for (const key of ["", "x".repeat(256), "caf\u00e9", "tab\there"]) {
      const r = await post(body, key);
      expect(r.status, JSON.stringify(key)).toBe(400);
      expect(r.body.error).toMatchObject({ code: "invalid_request", field: "Idempotency-Key" });
    }
    expect(await ordersOf(u)).toEqual([]);
    // The bounds themselves are fine.
    expect((await post(body, "x".repeat(255))).status).toBe(201);
    expect((await post({ ...body, user_id: user() }, "a")).status).toBe(201);
    expect((await post({ ...body, user_id: user() }, "with inner spaces ~!")).status).toBe(201);
  });

  test("without the header every request is a new order", async () => {
    const u = user();
    const body = { user_id: u, items: [{ product_id: product(), quantity: 1 }] };
    const [a, b] = [await post(body), await post(body)];
    expect([a.status, b.status]).toEqual([201, 201]);
    expect(a.headers.get("idempotent-replayed")).toBeNull();
    expect(a.body.id).not.toBe(b.body.id);
    expect(await ordersOf(u)).toHaveLength(2);
  });

  test("a request that failed keeps no key: the retry places the order", async () => {
    const u = user();
    const key = crypto.randomUUID();
    const bad = await post({ user_id: u, items: [{ product_id: 999_999, quantity: 1 }] }, key);
    expect(bad.status).toBe(422);
    expect(bad.body.error.code).toBe("unknown_product");
    const good = await post({ user_id: u, items: [{ product_id: product(), quantity: 1 }] }, key);
    expect(good.status).toBe(201);
    expect(good.headers.get("idempotent-replayed")).toBeNull();
  });

  test("expired keys are pruned; the same key then places a new order", async () => {
    const u = user();
    const body = { user_id: u, items: [{ product_id: product(), quantity: 1 }] };
    const [oldKey, freshKey] = [crypto.randomUUID(), crypto.randomUUID()];
    const first = await post(body, oldKey);
    const fresh = await post({ ...body, user_id: user() }, freshKey);
    expect([first.status, fresh.status]).toEqual([201, 201]);
    await t.shop.db.autocommit((q) =>
      q.execute(sql`update registry.idempotency_keys set created_at = now() - interval '25 hours' where key = ${oldKey}`),
    );
    expect(await pruneIdempotencyKeys(t.shop.db, 24 * 3_600_000)).toBeGreaterThanOrEqual(1);

    const again = await post(body, oldKey);
    expect(again.status).toBe(201);
    expect(again.headers.get("idempotent-replayed")).toBeNull();
    expect(again.body.id).not.toBe(first.body.id);
    expect(await ordersOf(u)).toHaveLength(2);
    // A key within its retention is still answered.
    const replay = await post({ ...body, user_id: fresh.body.user_id }, freshKey);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.body.id).toBe(fresh.body.id);
  });

  test("the header and the 422 are in the OpenAPI document", async () => {
    const doc = await getJson(t.urls.registry, "/openapi.json");
    const post = doc.paths["/orders"].post;
    expect(post.parameters).toContainEqual(expect.objectContaining({ name: "Idempotency-Key", in: "header", required: false }));
    expect(post.responses["422"].description).toContain("idempotency_key_reused");
    expect(post.responses["201"].headers["Idempotent-Replayed"]).toBeDefined();
  });
});

describe("claiming a key on PostgreSQL (read committed)", () => {
  let db: Database;
  beforeAll(async () => {
    const url = await postgresUrl();
    // The shop migrates the database; then a handle of our own drives transactions by hand.
    const t = await startInProcess({ DATABASE_URL: url });
    await t.stop();
    db = await openDatabase({ driver: "postgres", url, poolSize: 4 }, createLogger("silent"));
  }, 120_000);
  afterAll(() => db?.close());

  const keyed = (): KeyedRequest => ({ key: crypto.randomUUID(), hash: requestHash(1, [{ product_id: 1, quantity: 1 }]) });
  /** Transactions waiting on a lock of the key table. */
  const waitingOnKey = async () => {
    const rows = await db.read((q) =>
      q.execute<{ n: number }>(
        sql`select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query ilike '%idempotency_keys%'`,
      ),
    );
    return Number((rows as unknown as { n: number }[])[0]?.n ?? 0);
  };

  /** Holds a transaction that claimed `req` until `finish` is called; it commits or rolls back. */
  function holdClaim(req: KeyedRequest, answer: { statusCode: number; body: unknown }) {
    let finish: (commit: boolean) => void = () => {};
    const decided = new Promise<boolean>((resolve) => (finish = resolve));
    let claimed = false;
    const done = db
      .transaction(async (tx) => {
        await claimKey(tx, req);
        await recordAnswer(tx, req, crypto.randomUUID(), answer);
        claimed = true;
        if (!(await decided)) throw new Error("rolled back on purpose");
      })
      .catch((err: Error) => err.message);
    return { finish, done, isClaimed: () => claimed };
  }

  test("a second claim waits for the first; once it commits, it sees the first answer", async () => {
    const req = keyed();
    const answer = { statusCode: 201, body: { id: "first", status: "pending" } };
    const first = holdClaim(req, answer);
    await eventually(() => first.isClaimed());
    const second = db.transaction((tx) => claimKey(tx, req)).then(() => "claimed", (err: unknown) => err);
    await eventually(async () => (await waitingOnKey()) >= 1);
    first.finish(true);
    await first.done;
    const outcome = await second;
    expect(outcome).toBeInstanceOf(AlreadyAnswered);
    expect((outcome as AlreadyAnswered).answer).toEqual(answer);
  });

  test("a second claim waits for the first; if it rolls back, the second wins", async () => {
    const req = keyed();
    const first = holdClaim(req, { statusCode: 201, body: { id: "lost" } });
    await eventually(() => first.isClaimed());
    const second = db.transaction((tx) => claimKey(tx, req)).then(() => "claimed", (err: unknown) => err);
    await eventually(async () => (await waitingOnKey()) >= 1);
    first.finish(false);
    expect(await first.done).toBe("rolled back on purpose");
    expect(await second).toBe("claimed");
  });

  test("another body under the same key, waiting on the first: idempotency_key_reused", async () => {
    const req = keyed();
    const first = holdClaim(req, { statusCode: 201, body: { id: "first" } });
    await eventually(() => first.isClaimed());
    const second = db
      .transaction((tx) => claimKey(tx, { key: req.key, hash: requestHash(2, [{ product_id: 1, quantity: 1 }]) }))
      .then(() => "claimed", (err: { code?: string }) => err.code);
    await eventually(async () => (await waitingOnKey()) >= 1);
    first.finish(true);
    await first.done;
    expect(await second).toBe("idempotency_key_reused");
  });
});
