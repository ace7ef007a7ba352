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
import { listOrders, type ShopUrls } from "./support/audit";
import { type PostgresCluster, startPostgresCluster } from "./support/postgres-cluster";
import { type ShopProcess, startShopProcess } from "./support/process";
import { createDatabase, processEnv } from "./support/shop-target";
import { auditUntilClean, type Books, newBooks, openAccounts, printTimelines, startStorm, waitAllFinal } from "./support/storm";

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
  await openAccounts(urls, books, users, products);

  const started = Date.now();
  const killNow = Promise.withResolvers<void>();
  const killAfter = KILL_AFTER_MS[0] + Math.random() * (KILL_AFTER_MS[1] - KILL_AFTER_MS[0]);
  let timeUp = false;
  const storm = startStorm(urls, books, {
    users,
    products,
    clients: CLIENTS,
    ordersPerUser: ORDERS_PER_USER,
    label: `round ${round}`,
    onPlaced: (placed) => {
      if ((timeUp && placed >= MIN_PLACED) || placed >= storm.capacity * KILL_AT_SHARE) killNow.resolve();
    },
  });
  const timer = setTimeout(() => {
    timeUp = true;
    if (storm.placed >= MIN_PLACED) killNow.resolve();
  }, killAfter);
  const lastResort = setTimeout(killNow.resolve, MAX_STORM_MS);

  // Every client out of orders to place also ends the storm (then nothing is in flight at the kill).
  await Promise.race([killNow.promise, storm.finished]);
  clearTimeout(timer);
  clearTimeout(lastResort);
  storm.halt();
  const inFlightAtKill = storm.inFlight;
  const placedAtKill = storm.placed;
  shop.proc.kill("SIGKILL");
  const code = await shop.proc.exited;
  await storm.finished;
  console.log(
    `[${label}] round ${round}: kill -9 after ${Date.now() - started} ms, ${placedAtKill} orders placed, ` +
      `${inFlightAtKill} posts in flight, exit ${code}`,
  );
}

/** Waits until every order of the test's users is final (compensations included). */
async function allFinal(urls: ShopUrls, books: Books, label: string): Promise<void> {
  const ms = await waitAllFinal(urls, books, FINAL_TIMEOUT_MS);
  console.log(`[${label}] every order final after ${ms} ms`);
}

describe.each(backends)("kill -9 mid-load, one process on $name", (backend) => {
  test(`${CRASHES} crashes under load, restarts on the same data: every order final, money and stock balance`, async () => {
    const t0 = Date.now();
    const { env: dbEnv, cleanup } = await backend.prepare();
    const env = processEnv({ ...dbEnv, REGISTRY_SAGA_DEADLINE_SECONDS: String(SAGA_DEADLINE_SECONDS) });
    const books = newBooks();
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
      const audit = await auditUntilClean(urls, books, AUDIT_TIMEOUT_MS);
      console.log(
        `[${backend.name}] ${audit.orders.length} orders: ${audit.counts.completed} completed, ${audit.counts.rejected} rejected ` +
          `${JSON.stringify(audit.counts.reasons)}, ${audit.counts.pending} not final; ${books.refused["503 overloaded"] ?? 0} refused as overloaded; ` +
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
  }, 300_000);
});
