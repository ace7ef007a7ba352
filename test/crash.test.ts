/**
 * kill -9 mid-load: the whole shop runs as one child process, many clients place orders, the
 * process is killed with SIGKILL while orders, payments, reservations and compensations are in
 * flight, and restarted on the same data. After the last restart every order must become final
 * and the books must balance (test/support/audit.ts). Once on PGlite, once on PostgreSQL.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { auditShop, listOrders, type ShopUrls, unfinishedOrders } from "./support/audit";
import { eventually } from "./support/eventually";
import { type PostgresCluster, startPostgresCluster } from "./support/postgres-cluster";
import { type ShopProcess, startShopProcess } from "./support/process";
import { createDatabase, processEnv } from "./support/shop-target";

/** Crashes per backend (CRASH_ROUNDS overrides it for a longer soak); after the last one the shop is restarted once more and audited. */
const CRASHES = Number(process.env.CRASH_ROUNDS ?? 10);
/** Concurrent clients posting orders. */
const CLIENTS = 24;
/** Users and products new in each round (the fixture catalogue has 100 products at 10.00). */
const USERS_PER_ROUND = 32;
const PRODUCTS_PER_ROUND = 6;
const CATALOGUE = 100;
/** Orders per user at most, so the 50 ledger rows `GET /wallets/{id}` shows hold all of them. */
const ORDERS_PER_USER = 16;
/** The kill comes this long after the storm started (random within), or earlier once this share of the round's orders was placed. */
const KILL_AFTER_MS: [number, number] = [300, 3000];
const KILL_AT_SHARE = 0.8;
/** ... but not before this many orders of the round were placed (a slow start must still be a load). */
const MIN_PLACED = 8;
/** A storm that cannot place orders ends here anyway (its errors fail the test). */
const MAX_STORM_MS = 60_000;
/**
 * Pending orders older than this are rejected by registry (after a restart too). Shorter than a
 * crash-and-restart cycle, so the sweeps' bursts of compensations overlap the next storm and kill.
 */
const SAGA_DEADLINE_SECONDS = 1;
/** Generous bounds: CI is a busy two-core box. */
const START_TIMEOUT_MS = 120_000;
const FINAL_TIMEOUT_MS = 150_000;
const AUDIT_TIMEOUT_MS = 30_000;
const REQUEST_TIMEOUT_MS = 30_000;

/** Every fixture product costs 10.00. */
const PRICE = 1000;
/** Deposits cycle through these: rich users only ever meet empty shelves, poor ones run out of money. */
const DEPOSITS = [80 * PRICE, 12 * PRICE, 4 * PRICE, 1.5 * PRICE];
/** Stock per product of a round: three plentiful, three scarce. */
const RECEIPTS = [1000, 1000, 1000, 8, 5, 3];

type Backend = { name: string; prepare(): Promise<{ env: Record<string, string>; cleanup(): Promise<void> }> };

let cluster: PostgresCluster | null = null;
const dirs: string[] = [];
afterAll(async () => {
  await cluster?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const backends: Backend[] = [
  {
    name: "PGlite",
    async prepare() {
      const dataDir = mkdtempSync(join(tmpdir(), "shop-crash-"));
      dirs.push(dataDir);
      return { env: { DATA_DIR: dataDir }, cleanup: async () => rmSync(dataDir, { recursive: true, force: true }) };
    },
  },
  {
    name: "PostgreSQL",
    async prepare() {
      cluster ??= await startPostgresCluster({ name: "crash" });
      // DATA_DIR :memory: so that a process that ignored DATABASE_URL would lose everything and fail loudly.
      return { env: { DATABASE_URL: await createDatabase(cluster.url), DATA_DIR: ":memory:" }, cleanup: async () => {} };
    },
  },
];

const OrderReply = z.object({ id: z.string(), status: z.string() });
const Timeline = z.object({ timeline: z.array(z.object({ service: z.string(), step: z.string(), detail: z.string().nullable() })) });

/** What the test put in and what it was told, across all rounds of one backend. */
interface Books {
  deposits: Map<number, number>;
  receipts: Map<number, number>;
  acknowledged: Set<string>;
  /** Answers other than 201 or 503 overloaded (or failed requests) before the kill, none expected: how many, and the first few. */
  stormErrors: { count: number; first: string[] };
  /** Orders refused with 503 `overloaded` (admission control): no order, the client may try again. */
  overloaded: number;
}

function stormError(books: Books, message: string): void {
  books.stormErrors.count += 1;
  if (books.stormErrors.first.length < 10) books.stormErrors.first.push(message);
}

const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)] as T;

function shuffled<T>(xs: readonly T[]): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

async function post(base: string, path: string, body: unknown): Promise<{ status: number; text: string }> {
  const res = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  return { status: res.status, text: await res.text() };
}

async function postOk(base: string, path: string, body: unknown): Promise<void> {
  const r = await post(base, path, body);
  if (r.status !== 201) throw new Error(`POST ${path}: ${r.status} ${r.text}`);
}

function urlsOf(p: ShopProcess): ShopUrls {
  const { registry, wallet, storage } = p.urls;
  if (!registry || !wallet || !storage) throw new Error(`missing a module: ${JSON.stringify(p.urls)}`);
  return { registry, wallet, storage };
}

/**
 * Opens the round's wallets and stock, then lets CLIENTS post orders until the process is killed
 * (SIGKILL) while they are in flight. Returns once the process is gone and every client stopped.
 */
async function crashRound(shop: ShopProcess, round: number, books: Books, label: string): Promise<void> {
  const urls = urlsOf(shop);
  const users = Array.from({ length: USERS_PER_ROUND }, (_, i) => 1000 * round + i + 1);
  // Fresh products each round while the catalogue lasts (a long soak reuses them; receipts add up).
  const products = Array.from({ length: PRODUCTS_PER_ROUND }, (_, i) => ((PRODUCTS_PER_ROUND * (round - 1) + i) % CATALOGUE) + 1);
  for (const [i, u] of users.entries()) {
    const cents = DEPOSITS[i % DEPOSITS.length] as number;
    await postOk(urls.wallet, `/wallets/${u}/deposits`, { amount_cents: cents });
    books.deposits.set(u, (books.deposits.get(u) ?? 0) + cents);
  }
  for (const [i, p] of products.entries()) {
    const quantity = RECEIPTS[i % RECEIPTS.length] as number;
    await postOk(urls.storage, `/stock/${p}/receipts`, { quantity });
    books.receipts.set(p, (books.receipts.get(p) ?? 0) + quantity);
  }

  const capacity = users.length * ORDERS_PER_USER;
  const slots = new Map(users.map((u) => [u, ORDERS_PER_USER]));
  let killed = false;
  let placed = 0;
  let inFlight = 0;
  const started = Date.now();
  let kill!: () => void;
  const killNow = new Promise<void>((resolve) => {
    kill = resolve;
  });
  const killAfter = KILL_AFTER_MS[0] + Math.random() * (KILL_AFTER_MS[1] - KILL_AFTER_MS[0]);
  let timeUp = false;
  const timer = setTimeout(() => {
    timeUp = true;
    if (placed >= MIN_PLACED) kill();
  }, killAfter);
  const lastResort = setTimeout(kill, MAX_STORM_MS);

  const client = async () => {
    while (!killed) {
      const open = users.filter((u) => (slots.get(u) ?? 0) > 0);
      if (open.length === 0) return;
      const user = pick(open);
      slots.set(user, (slots.get(user) ?? 0) - 1);
      // One to four different products: storage reserves all of them or none.
      const items = shuffled(products)
        .slice(0, 1 + Math.floor(Math.random() * 4))
        .map((p) => ({ product_id: p, quantity: 1 + Math.floor(Math.random() * 2) }));
      inFlight += 1;
      try {
        const r = await post(urls.registry, "/orders", { user_id: user, items });
        if (r.status === 201) {
          const body = OrderReply.parse(JSON.parse(r.text));
          books.acknowledged.add(body.id);
          placed += 1;
          if ((timeUp && placed >= MIN_PLACED) || placed >= capacity * KILL_AT_SHARE) kill();
        } else if (r.status === 503 && /"overloaded"/.test(r.text)) {
          books.overloaded += 1;
          slots.set(user, (slots.get(user) ?? 0) + 1);
        } else if (!killed) {
          stormError(books, `round ${round}: POST /orders ${r.status} ${r.text.slice(0, 200)}`);
        }
      } catch (err) {
        // Connection errors are what a kill looks like; before it they are a failure.
        if (!killed) stormError(books, `round ${round}: POST /orders failed: ${(err as Error).message}`);
      } finally {
        inFlight -= 1;
      }
    }
  };

  const clients = Array.from({ length: CLIENTS }, client);
  // Every client out of orders to place also ends the storm (then nothing is in flight at the kill).
  await Promise.race([killNow, Promise.all(clients)]);
  clearTimeout(timer);
  clearTimeout(lastResort);
  killed = true;
  const inFlightAtKill = inFlight;
  const placedAtKill = placed;
  shop.proc.kill("SIGKILL");
  const code = await shop.proc.exited;
  await Promise.all(clients);
  console.log(
    `[${label}] round ${round}: kill -9 after ${Date.now() - started} ms, ${placedAtKill} orders placed, ` +
      `${inFlightAtKill} posts in flight, exit ${code}`,
  );
}

/** Waits until no order of the test's users is pending. */
async function allFinal(urls: ShopUrls, books: Books, label: string): Promise<void> {
  const f0 = Date.now();
  await eventually(
    async () => {
      const left = await unfinishedOrders(urls.registry, books.deposits.keys());
      if (left.length > 0) throw new Error(`${left.length} orders still pending, e.g. ${left[0]?.id}`);
    },
    FINAL_TIMEOUT_MS,
    500,
  );
  console.log(`[${label}] every order final after ${Date.now() - f0} ms`);
}

/** Prints the saga timeline of the first few orders a violation names, to tell what was lost. */
async function printTimelines(registry: string, violations: string[], label: string): Promise<void> {
  const ids = [...new Set(violations.flatMap((v) => v.match(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g) ?? []))];
  for (const id of ids.slice(0, 5)) {
    const res = await fetch(`${registry}/orders/${id}`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    const parsed = Timeline.safeParse(await res.json());
    const steps = parsed.success ? parsed.data.timeline.map((e) => `${e.service}:${e.step}${e.detail ? ` (${e.detail})` : ""}`).join(" → ") : "?";
    console.log(`[${label}] order ${id}: ${steps}`);
  }
}

describe.each(backends)("kill -9 mid-load, one process on $name", (backend) => {
  test(
    `${CRASHES} crashes under load, restarts on the same data: every order final, money and stock balance`,
    async () => {
      const t0 = Date.now();
      const { env: dbEnv, cleanup } = await backend.prepare();
      const env = processEnv({ ...dbEnv, REGISTRY_SAGA_DEADLINE_SECONDS: String(SAGA_DEADLINE_SECONDS) });
      const books: Books = { deposits: new Map(), receipts: new Map(), acknowledged: new Set(), stormErrors: { count: 0, first: [] }, overloaded: 0 };
      let shop: ShopProcess | null = null;
      try {
        for (let round = 1; round <= CRASHES; round++) {
          const s0 = Date.now();
          shop = await startShopProcess([], env, 3, START_TIMEOUT_MS);
          console.log(`[${backend.name}] start ${round}: listening after ${Date.now() - s0} ms`);
          // Every other storm starts on a quiet shop, so that its crash leaves many sagas half done; the
          // storm after it starts at once, while the deadline sweep compensates those, and kills that.
          if (round % 2 === 1 && round > 1) await allFinal(urlsOf(shop), books, backend.name);
          await crashRound(shop, round, books, backend.name);
          shop = null;
        }
        const s0 = Date.now();
        shop = await startShopProcess([], env, 3, START_TIMEOUT_MS);
        console.log(`[${backend.name}] final start: listening after ${Date.now() - s0} ms`);
        const urls = urlsOf(shop);

        // Orders the crash left pending are finished by their saga or by the deadline (the audit names any that are not).
        await allFinal(urls, books, backend.name).catch(() => {});

        // Compensations land shortly after registry decides: wait for the books to balance.
        const input = { urls, deposits: books.deposits, receipts: books.receipts, acknowledged: books.acknowledged };
        const audit = await eventually(
          async () => {
            const a = await auditShop(input);
            return a.violations.length === 0 ? a : false;
          },
          AUDIT_TIMEOUT_MS,
          1000,
        ).catch(() => auditShop(input));
        console.log(
          `[${backend.name}] ${audit.orders.length} orders: ${audit.counts.completed} completed, ${audit.counts.rejected} rejected ` +
            `${JSON.stringify(audit.counts.reasons)}, ${audit.counts.pending} not final; ${books.overloaded} refused as overloaded; ` +
            `${audit.violations.length} violations; ` +
            `${Math.round((Date.now() - t0) / 1000)} s`,
        );

        if (audit.violations.length > 0) await printTimelines(urls.registry, audit.violations, backend.name);

        expect(books.stormErrors).toEqual({ count: 0, first: [] });
        expect({ violations: audit.violations.length, first: audit.violations.slice(0, 30) }).toEqual({ violations: 0, first: [] });
        // The whole database, not only the audited users: every order listed is one of theirs.
        const everyone = await listOrders(urls.registry);
        expect({ listed: everyone.length, strangers: everyone.filter((o) => !books.deposits.has(o.user_id)).map((o) => o.id) }).toEqual({
          listed: audit.orders.length,
          strangers: [],
        });
        // The load did what it is for: orders completed, and both kinds of rejection happened.
        expect(audit.counts.completed).toBeGreaterThan(0);
        expect(audit.counts.reasons.insufficient_funds ?? 0).toBeGreaterThan(0);
        expect(audit.counts.reasons.out_of_stock ?? 0).toBeGreaterThan(0);

        expect(await shop.stop("SIGTERM")).toBe(0);
        shop = null;
      } finally {
        if (shop) {
          shop.proc.kill("SIGKILL");
          await shop.proc.exited;
        }
        await cleanup();
      }
    },
    300_000,
  );
});
