/**
 * `Idempotency-Key` on `POST /orders`, on deposits and on stock receipts, on PGlite and on
 * PostgreSQL: 200 concurrent identical requests make one order (one debit, one reservation) or
 * one deposit or receipt, a reused key with another body is refused, a bad key is a 400, expired
 * keys are pruned; on PostgreSQL, a second transaction claiming a key waits for the first and then
 * sees its answer (or wins if it rolled back). Also: a receipt never takes a product past the
 * stock columns' range (409 stock_limit, never a 500), racing receipts included.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { createCatalogue } from "../modules/registry/catalogue";
import {
  AlreadyAnswered,
  claimKey,
  type KeyedRequest,
  pruneIdempotencyKeys,
  recordAnswer,
  requestHash,
} from "../modules/registry/idempotency";
import { placeOrder } from "../modules/registry/orders";
import { deadLetters as registryDeadLetters, inbox as registryInbox, outbox as registryOutbox } from "../modules/registry/schema";
import { idempotencyKeys as storageKeys } from "../modules/storage/schema";
import { MAX_STOCK_UNITS } from "../modules/storage/service";
import { idempotencyKeys as walletKeys } from "../modules/wallet/schema";
import { type Database, openDatabase } from "../src/db/database";
import { pruneOlderThan } from "../src/db/retention";
import { rowsOf } from "../src/db/rows";
import { type IdempotencyKeysTable, idempotencyKeyPruneJob } from "../src/idempotency";
import { createLogger } from "../src/log";
import { eventually } from "./support/eventually";
import { adminHeaders, call, getJson } from "./support/http";
import { captureOutbox } from "./support/module-db";
import { type PostgresCluster, startPostgresCluster } from "./support/postgres-cluster";
import { registerIf } from "./support/register-if";
import { createDatabase, type ShopTarget, startInProcess } from "./support/shop-target";

const PRICE = 1000; // every fixture product costs 10.00
const CONCURRENT = 200;

let cluster: PostgresCluster | null = null;
afterAll(async () => {
  await cluster?.stop();
});
const postgresUrl = async () => createDatabase((cluster ??= await startPostgresCluster({ name: "idempotency" })).url);

/**
 * Concurrent claims run on both databases; the cases no database changes (validation, another
 * body under a key, pruning, the OpenAPI document) only on the one whose flag is true.
 */
const backends: [string, () => Promise<Record<string, string>>, boolean][] = [
  ["PGlite", async () => ({}), true],
  ["PostgreSQL", async () => ({ DATABASE_URL: await postgresUrl() }), false],
];

describe.each(backends)("Idempotency-Key on POST /orders (%s)", (_name, env, firstBackend) => {
  const backendFree = registerIf(firstBackend);
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

  test("a replay is the first answer byte for byte, its fields in the same order (the answer is stored as written)", async () => {
    await call(t.urls.wallet, "POST", "/wallets/4242/deposits", { amount_cents: 100_000 }, adminHeaders);
    const key = crypto.randomUUID();
    const send = () =>
      fetch(`${t.urls.registry}/orders`, {
        method: "POST",
        headers: { "content-type": "application/json", "Idempotency-Key": key },
        body: JSON.stringify({ user_id: 4242, items: [{ product_id: product(), quantity: 1 }] }),
      });
    const first = await send();
    const firstText = await first.text();
    // The same body again: product() moved on, so send exactly what the first request sent.
    lastProduct--;
    const again = await send();
    expect([first.status, again.status, again.headers.get("idempotent-replayed")]).toEqual([201, 201, "true"]);
    expect(await again.text()).toBe(firstText);
  });

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

  backendFree("the same key with another body: 422 idempotency_key_reused, nothing created", async () => {
    const [u, other, p] = [user(), user(), product()];
    const key = `order-${crypto.randomUUID()}`;
    const first = await post({ user_id: u, items: [{ product_id: p, quantity: 1 }] }, key);
    expect(first.status).toBe(201);
    for (const body of [
      { user_id: u, items: [{ product_id: p, quantity: 2 }] },
      { user_id: other, items: [{ product_id: p, quantity: 1 }] },
      {
        user_id: u,
        items: [
          { product_id: p, quantity: 1 },
          { product_id: product(), quantity: 1 },
        ],
      },
    ]) {
      const r = await post(body, key);
      expect(r.status).toBe(422);
      expect(r.body).toEqual({ error: { code: "idempotency_key_reused", message: expect.any(String), field: "Idempotency-Key" } });
    }
    expect((await ordersOf(u)).map((o) => o.id)).toEqual([first.body.id]);
    expect(await ordersOf(other)).toEqual([]);
  });

  backendFree("items in another order are another request", async () => {
    const [u, a, b] = [user(), product(), product()];
    const key = crypto.randomUUID();
    const items = [
      { product_id: a, quantity: 1 },
      { product_id: b, quantity: 1 },
    ];
    expect((await post({ user_id: u, items }, key)).status).toBe(201);
    expect((await post({ user_id: u, items: [...items].reverse() }, key)).status).toBe(422);
  });

  backendFree("a bad key is a 400 naming the header, and places nothing", async () => {
    const u = user();
    const body = { user_id: u, items: [{ product_id: product(), quantity: 1 }] };
    for (const key of ["", "x".repeat(256), "caf\u00e9", "tab\there", "with inner spaces"]) {
      const r = await post(body, key);
      expect(r.status, JSON.stringify(key)).toBe(400);
      expect(r.body.error).toMatchObject({ code: "invalid_request", field: "Idempotency-Key" });
    }
    expect(await ordersOf(u)).toEqual([]);
    // The bounds themselves are fine.
    expect((await post(body, "x".repeat(255))).status).toBe(201);
    expect((await post({ ...body, user_id: user() }, "a")).status).toBe(201);
    expect((await post({ ...body, user_id: user() }, "visible-ASCII_only:~!{}")).status).toBe(201);
  });

  backendFree("without the header every request is a new order", async () => {
    const u = user();
    const body = { user_id: u, items: [{ product_id: product(), quantity: 1 }] };
    const [a, b] = [await post(body), await post(body)];
    expect([a.status, b.status]).toEqual([201, 201]);
    expect(a.headers.get("idempotent-replayed")).toBeNull();
    expect(a.body.id).not.toBe(b.body.id);
    expect(await ordersOf(u)).toHaveLength(2);
  });

  backendFree("a request that failed keeps no key: the retry places the order", async () => {
    const u = user();
    const key = crypto.randomUUID();
    const bad = await post({ user_id: u, items: [{ product_id: 999_999, quantity: 1 }] }, key);
    expect(bad.status).toBe(422);
    expect(bad.body.error.code).toBe("unknown_product");
    const good = await post({ user_id: u, items: [{ product_id: product(), quantity: 1 }] }, key);
    expect(good.status).toBe(201);
    expect(good.headers.get("idempotent-replayed")).toBeNull();
  });

  backendFree("expired keys are pruned; the same key then places a new order", async () => {
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

  backendFree("the header and the 422 are in the OpenAPI document", async () => {
    const doc = await getJson(t.urls.registry, "/openapi.json");
    const post = doc.paths["/orders"].post;
    expect(post.parameters).toContainEqual(expect.objectContaining({ name: "Idempotency-Key", in: "header", required: false }));
    expect(post.responses["422"].description).toContain("idempotency_key_reused");
    expect(post.responses["201"].headers["Idempotent-Replayed"]).toBeDefined();
  });
});

type InProcessShop = ShopTarget & { shop: { db: Database } };

/** A keyed admin write: a deposit to a wallet or a receipt into stock, and how to read what it changed. */
interface AdminWrite {
  name: string;
  service: "wallet" | "storage";
  /** The documented route and the path for target `id`. */
  route: string;
  path: (id: number) => string;
  body: (amount: number) => Record<string, number>;
  /** The balance or available units of `id`. */
  level: (t: InProcessShop, id: number) => Promise<number>;
  /** How many deposits or receipts `id` has. */
  entries: (t: InProcessShop, id: number) => Promise<number>;
  table: IdempotencyKeysTable;
  schema: string;
}

const adminWrites: AdminWrite[] = [
  {
    name: "deposit",
    service: "wallet",
    route: "/wallets/{user_id}/deposits",
    path: (id) => `/wallets/${id}/deposits`,
    body: (amount) => ({ amount_cents: amount }),
    level: async (t, id) => {
      const r = await call(t.urls.wallet, "GET", `/wallets/${id}`);
      return r.status === 404 ? 0 : r.body.balance_cents;
    },
    entries: async (t, id) => {
      const r = await call(t.urls.wallet, "GET", `/wallets/${id}`);
      return r.status === 404 ? 0 : (r.body.ledger as { kind: string }[]).filter((e) => e.kind === "deposit").length;
    },
    table: walletKeys,
    schema: "wallet",
  },
  {
    name: "receipt",
    service: "storage",
    route: "/stock/{product_id}/receipts",
    path: (id) => `/stock/${id}/receipts`,
    body: (amount) => ({ quantity: amount }),
    level: async (t, id) => (await getJson(t.urls.storage, `/stock/${id}`)).available,
    entries: async (t, id) => {
      const rows = await t.shop.db.read((q) => q.execute(sql`select count(*)::int as n from storage.receipts where product_id = ${id}`));
      return Number(rowsOf(rows)[0]?.n);
    },
    table: storageKeys,
    schema: "storage",
  },
];

describe.each(backends)("Idempotency-Key on deposits and stock receipts (%s)", (_name, env, firstBackend) => {
  const backendFree = registerIf(firstBackend);
  let t: InProcessShop;
  // Wallets: fresh random users; stock: the fixture's products 1 to 100, one per test (this shop's own database).
  let lastProduct = 0;
  const targetFor = (w: AdminWrite) => (w.service === "wallet" ? 100_000 + Math.floor(Math.random() * 2_000_000_000) : ++lastProduct);
  beforeAll(async () => {
    t = await startInProcess(await env());
  }, 120_000);
  afterAll(() => t?.stop(), 60_000);

  const post = (w: AdminWrite, id: number, amount: number, key?: string) =>
    call(
      t.urls[w.service],
      "POST",
      w.path(id),
      w.body(amount),
      key === undefined ? adminHeaders : { ...adminHeaders, "Idempotency-Key": key },
    );

  describe.each(adminWrites.map((w) => [w.name, w] as const))("%s", (_n, w) => {
    test(`${CONCURRENT} concurrent identical requests with one key: applied once; one answer, the rest replay it`, async () => {
      const id = targetFor(w);
      const key = crypto.randomUUID();
      const answers = await Promise.all(Array.from({ length: CONCURRENT }, () => post(w, id, 7, key)));
      expect(answers.map((a) => a.status)).toEqual(Array(CONCURRENT).fill(201));
      const original = answers.filter((a) => a.headers.get("idempotent-replayed") === null);
      expect(original).toHaveLength(1);
      const replays = answers.filter((a) => a.headers.get("idempotent-replayed") === "true");
      expect(replays).toHaveLength(CONCURRENT - 1);
      for (const r of [...original, ...replays]) {
        expect(r.body).toEqual(original[0]?.body);
        expect(r.headers.get("location")).toBe(w.path(id).replace(/\/(deposits|receipts)$/, ""));
      }
      expect(await w.level(t, id)).toBe(7);
      expect(await w.entries(t, id)).toBe(1);

      // Later, the same key still answers as first answered, and adds nothing.
      const later = await post(w, id, 7, key);
      expect([later.status, later.headers.get("idempotent-replayed")]).toEqual([201, "true"]);
      expect(later.body).toEqual(original[0]?.body);
      expect(await w.level(t, id)).toBe(7);
      // A new key is a new write.
      expect((await post(w, id, 7, crypto.randomUUID())).status).toBe(201);
      expect(await w.level(t, id)).toBe(14);
    }, 120_000);

    backendFree("the same key with another body or for another target: 422 idempotency_key_reused, nothing added", async () => {
      const [id, other] = [targetFor(w), targetFor(w)];
      const key = `${w.name}-${crypto.randomUUID()}`;
      expect((await post(w, id, 5, key)).status).toBe(201);
      for (const [target, amount] of [
        [id, 6],
        [other, 5],
      ] as const) {
        const r = await post(w, target, amount, key);
        expect(r.status).toBe(422);
        expect(r.body).toEqual({ error: { code: "idempotency_key_reused", message: expect.any(String), field: "Idempotency-Key" } });
      }
      expect([await w.level(t, id), await w.level(t, other)]).toEqual([5, 0]);
    });

    backendFree("a bad key is a 400 naming the header and adds nothing; without a key every request adds", async () => {
      const id = targetFor(w);
      for (const key of ["", "x".repeat(256), "caf\u00e9", "tab\there", "with inner spaces"]) {
        const r = await post(w, id, 3, key);
        expect(r.status, JSON.stringify(key)).toBe(400);
        expect(r.body.error).toMatchObject({ code: "invalid_request", field: "Idempotency-Key" });
      }
      expect(await w.level(t, id)).toBe(0);
      const [a, b] = [await post(w, id, 3), await post(w, id, 3)];
      expect([a.status, b.status, a.headers.get("idempotent-replayed")]).toEqual([201, 201, null]);
      expect(await w.level(t, id)).toBe(6);
    });

    backendFree("a request that failed keeps no key: the retry with the same key applies", async () => {
      const id = targetFor(w);
      const key = crypto.randomUUID();
      if (w.service === "wallet") {
        // A wallet at its limit refuses the keyed deposit (409); once emptied, the same key deposits.
        expect((await post(w, id, 1)).status).toBe(201);
        const setBalance = (cents: number) =>
          t.shop.db.autocommit((q) => q.execute(sql`update wallet.wallets set balance_cents = ${cents} where user_id = ${id}`));
        await setBalance(Number.MAX_SAFE_INTEGER);
        const refused = await post(w, id, 2, key);
        expect([refused.status, refused.body.error.code]).toEqual([409, "balance_limit"]);
        await setBalance(0);
      } else {
        // A receipt for a product storage keeps no stock for (404), then the same key for one it keeps.
        const refused = await post(w, 999_999, 2, key);
        expect([refused.status, refused.body.error.code]).toEqual([404, "unknown_product"]);
      }
      const good = await post(w, id, 2, key);
      expect([good.status, good.headers.get("idempotent-replayed")]).toEqual([201, null]);
      expect(await w.level(t, id)).toBe(2);
    });

    backendFree("expired keys are pruned by the module's job; the same key then adds again", async () => {
      const id = targetFor(w);
      const [oldKey, freshKey] = [crypto.randomUUID(), crypto.randomUUID()];
      expect((await post(w, id, 1, oldKey)).status).toBe(201);
      expect((await post(w, id, 10, freshKey)).status).toBe(201);
      await t.shop.db.autocommit((q) =>
        q.execute(
          sql`update ${sql.identifier(w.schema)}.idempotency_keys set created_at = now() - interval '25 hours' where key = ${oldKey}`,
        ),
      );
      expect(await pruneOlderThan(t.shop.db, idempotencyKeyPruneJob(w.table, 24 * 3_600_000))).toBeGreaterThanOrEqual(1);
      const again = await post(w, id, 1, oldKey);
      expect([again.status, again.headers.get("idempotent-replayed")]).toEqual([201, null]);
      const replay = await post(w, id, 10, freshKey);
      expect(replay.headers.get("idempotent-replayed")).toBe("true");
      expect(await w.level(t, id)).toBe(12);
    });

    backendFree("the header, Idempotent-Replayed and the 422 are in the OpenAPI document", async () => {
      const doc = await getJson(t.urls[w.service], "/openapi.json");
      const op = doc.paths[w.route].post;
      const header = op.parameters.find((p: { name: string; in: string }) => p.name === "Idempotency-Key" && p.in === "header");
      expect(header).toMatchObject({ required: false, description: expect.stringContaining("idempotency_key_reused") });
      expect(op.responses["422"].description).toContain("idempotency_key_reused");
      expect(op.responses["201"].headers["Idempotent-Replayed"]).toBeDefined();
    });
  });

  /** A product of this shop whose available stock is set to `available` (recorded as a receipt, so the books stay right). */
  async function stockedAt(available: number): Promise<number> {
    const id = ++lastProduct;
    await t.shop.db.transaction(async (tx) => {
      await tx.execute(sql`update storage.stock set available = ${available} where product_id = ${id} and available = 0 and reserved = 0`);
      await tx.execute(sql`insert into storage.receipts (product_id, quantity) values (${id}, ${available})`);
    });
    return id;
  }

  backendFree("a receipt that would take a product past 2,147,483,647 units: 409 stock_limit, the stock unchanged", async () => {
    const id = await stockedAt(MAX_STOCK_UNITS - 999_999);
    const r = await call(t.urls.storage, "POST", `/stock/${id}/receipts`, { quantity: 1_000_000 }, adminHeaders);
    expect(r.status).toBe(409);
    expect(r.body.error).toMatchObject({
      code: "stock_limit",
      field: "quantity",
      message: expect.stringContaining(String(MAX_STOCK_UNITS)),
    });
    expect(await getJson(t.urls.storage, `/stock/${id}`)).toMatchObject({ available: MAX_STOCK_UNITS - 999_999, reserved: 0 });
    // Up to the limit exactly is fine.
    const last = await call(t.urls.storage, "POST", `/stock/${id}/receipts`, { quantity: 999_999 }, adminHeaders);
    expect([last.status, last.body.available]).toEqual([201, MAX_STOCK_UNITS]);
    const doc = await getJson(t.urls.storage, "/openapi.json");
    expect(doc.paths["/stock/{product_id}/receipts"].post.responses["409"].description).toContain("stock_limit");
  });

  test("receipts racing near the limit: never a 5xx, never past the limit, each 201 counted once", async () => {
    const start = MAX_STOCK_UNITS - 5_500_000;
    const id = await stockedAt(start);
    const answers = await Promise.all(
      Array.from({ length: 40 }, () => call(t.urls.storage, "POST", `/stock/${id}/receipts`, { quantity: 1_000_000 }, adminHeaders)),
    );
    expect(answers.filter((a) => a.status !== 201 && a.status !== 409)).toEqual([]);
    const accepted = answers.filter((a) => a.status === 201).length;
    expect(accepted).toBe(5);
    expect(answers.filter((a) => a.status === 409).every((a) => a.body.error.code === "stock_limit")).toBe(true);
    expect(await getJson(t.urls.storage, `/stock/${id}`)).toMatchObject({ available: start + 5_000_000, reserved: 0 });
  }, 60_000);
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
    const second = db
      .transaction((tx) => claimKey(tx, req))
      .then(
        () => "claimed",
        (err: unknown) => err,
      );
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
    const second = db
      .transaction((tx) => claimKey(tx, req))
      .then(
        () => "claimed",
        (err: unknown) => err,
      );
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
      .then(
        () => "claimed",
        (err: { code?: string }) => err.code,
      );
    await eventually(async () => (await waitingOnKey()) >= 1);
    first.finish(true);
    await first.done;
    expect(await second).toBe("idempotency_key_reused");
  });
});
