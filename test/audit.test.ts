/**
 * The audit end to end, one process on PGlite: after real orders (completed, and rejected by
 * each participant) `GET /admin/audit` and `bun run audit` are clean; then the books are broken
 * with SQL behind the shop's back, one rule at a time, and each break is reported by both.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import type { Shop } from "../src/app/shop";
import { ShopAuditSchema } from "../src/contracts/audit";
import { eventually } from "./support/eventually";
import { adminHeaders, call, getJson, TEST_ADMIN_TOKEN } from "./support/http";
import { type ShopTarget, startInProcess } from "./support/shop-target";

const ROOT = join(import.meta.dir, "..");
const PRICE = 1000;
/** This suite's own users and products (the fixture catalogue has 100 products at 10.00). */
const RICH = 8101;
const POOR = 8102;
const OTHER = 8103;
const PLENTY = 81;
const SCARCE = 82;

let t: ShopTarget & { shop: Shop };
const orders: Record<"completed" | "noMoney" | "noStock", string> = { completed: "", noMoney: "", noStock: "" };

async function post(base: string, path: string, body: unknown): Promise<void> {
  const r = await call(base, "POST", path, body, adminHeaders);
  if (r.status !== 201) throw new Error(`POST ${path}: ${r.status} ${JSON.stringify(r.body)}`);
}

async function placeOrder(userId: number, productId: number, quantity: number): Promise<string> {
  const r = await call(t.urls.registry, "POST", "/orders", { user_id: userId, items: [{ product_id: productId, quantity }] });
  if (r.status !== 201) throw new Error(`POST /orders: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.id as string;
}

/** Waits until the order is final and, if rejected, its compensation confirmed. */
async function settled(id: string): Promise<{ status: string; reason: string | null }> {
  return eventually(
    async () => {
      const o = await getJson(t.urls.registry, `/orders/${id}`);
      if (o.status === "completed" || (o.status === "rejected" && o.compensation === "done")) return o;
      return false;
    },
    30_000,
    50,
  );
}

async function registryAudit() {
  const r = await call(t.urls.registry, "GET", "/admin/audit", undefined, adminHeaders);
  expect(r.status).toBe(200);
  return ShopAuditSchema.parse(r.body);
}

/** `bun run audit` against this shop: exit code and output. */
async function auditScript(extra: string[] = [], env: Record<string, string> = { ADMIN_TOKEN: TEST_ADMIN_TOKEN }) {
  const proc = Bun.spawn(
    ["bun", "run", "audit", "--registry-url", t.urls.registry, "--wallet-url", t.urls.wallet, "--storage-url", t.urls.storage, ...extra],
    {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR, ...env },
      stdout: "pipe",
      stderr: "pipe",
    },
  );
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

/** Runs SQL on the shop's database behind its back. */
const behindTheBack = (query: ReturnType<typeof sql>) => t.shop.db.autocommit((q) => q.execute(query));

beforeAll(async () => {
  t = await startInProcess();
  await post(t.urls.wallet, `/wallets/${RICH}/deposits`, { amount_cents: 100 * PRICE });
  await post(t.urls.wallet, `/wallets/${POOR}/deposits`, { amount_cents: PRICE / 2 });
  await post(t.urls.wallet, `/wallets/${OTHER}/deposits`, { amount_cents: 10 * PRICE });
  await post(t.urls.storage, `/stock/${PLENTY}/receipts`, { quantity: 100 });
  await post(t.urls.storage, `/stock/${SCARCE}/receipts`, { quantity: 1 });
  orders.completed = await placeOrder(RICH, PLENTY, 2);
  orders.noMoney = await placeOrder(POOR, PLENTY, 1); // storage reserves, then releases
  orders.noStock = await placeOrder(RICH, SCARCE, 5); // wallet debits, then refunds
  expect((await settled(orders.completed)).status).toBe("completed");
  expect(await settled(orders.noMoney)).toMatchObject({ status: "rejected", reason: "insufficient_funds" });
  expect(await settled(orders.noStock)).toMatchObject({ status: "rejected", reason: "out_of_stock" });
}, 120_000);

afterAll(async () => {
  await t?.stop();
});

describe("audit", () => {
  test("admin only: no token, no audit; documented as such", async () => {
    expect((await call(t.urls.registry, "GET", "/admin/audit")).status).toBe(401);
    expect((await call(t.urls.wallet, "GET", "/admin/audit/report")).status).toBe(401);
    const registry = await getJson(t.urls.registry, "/openapi.json");
    for (const path of ["/admin/audit", "/admin/audit/report"]) {
      expect(registry.paths[path].get.security).toEqual([{ adminToken: [] }]);
      expect(Object.keys(registry.paths[path].get.responses)).toEqual(expect.arrayContaining(["200", "401"]));
    }
    for (const service of ["wallet", "storage"] as const) {
      const doc = await getJson(t.urls[service], "/openapi.json");
      expect(Object.keys(doc.paths)).toContain("/admin/audit/report");
      expect(Object.keys(doc.paths)).not.toContain("/admin/audit");
    }
  });

  test("each module's report holds its facts", async () => {
    const registry = (await call(t.urls.registry, "GET", "/admin/audit/report", undefined, adminHeaders)).body;
    expect(registry.module).toBe("registry");
    expect(registry.facts.orders.find((o: { id: string }) => o.id === orders.noStock)).toMatchObject({
      status: "rejected",
      compensation: "done",
      total_cents: 5 * PRICE,
    });
    const wallet = (await call(t.urls.wallet, "GET", "/admin/audit/report", undefined, adminHeaders)).body;
    expect(wallet.facts.orders.find((o: { order_id: string }) => o.order_id === orders.noStock)).toMatchObject({
      debits: 1,
      refunds: 1,
      debit_cents: 5 * PRICE,
      refund_cents: 5 * PRICE,
    });
    const storage = (await call(t.urls.storage, "GET", "/admin/audit/report", undefined, adminHeaders)).body;
    expect(storage.facts.orders.find((o: { order_id: string }) => o.order_id === orders.noMoney)).toMatchObject({
      live: [],
      released: [{ product_id: PLENTY, quantity: 1 }],
    });
  });

  test("after completed and rejected orders the audit is clean, over HTTP and from the command line", async () => {
    const audit = await registryAudit();
    expect(audit.violations).toEqual([]);
    expect(audit.ok).toBe(true);
    expect(audit.modules.registry.counts.orders).toBe(3);
    const run = await auditScript();
    expect(run.stdout).toContain("audit clean");
    expect(run.code).toBe(0);
  }, 60_000);

  test("a service that cannot be reached: exit 2, and a wrong token is named", async () => {
    const down = await auditScript(["--wallet-url", "http://127.0.0.1:1"]);
    expect(down.code).toBe(2);
    expect(down.stdout).toContain("wallet: no report: cannot reach http://127.0.0.1:1/admin/audit/report");
    const refused = await auditScript(["--token", "not-the-admin-token-at-all"], {});
    expect(refused.code).toBe(2);
    expect(refused.stdout).toContain("registry: no report: GET");
    expect(refused.stdout).toContain("answered 401");
    expect(refused.stdout).toContain("registry: refused the admin token (401)");
    const help = await auditScript(["--help"]);
    expect(help.code).toBe(0);
    for (const v of ["REGISTRY_URL", "WALLET_URL", "STORAGE_URL", "ADMIN_TOKEN", "AUDIT_TIMEOUT_SECONDS"]) expect(help.stdout).toContain(v);
  }, 60_000);

  test("books broken behind the shop's back: each break is reported", async () => {
    const stranger = crypto.randomUUID();
    // 1. A second debit for the completed order (the unique index is dropped first), paid from the balance.
    await behindTheBack(sql`drop index wallet.ledger_order_kind`);
    await behindTheBack(sql`
      with w as (update wallet.wallets set balance_cents = balance_cents - ${2 * PRICE} where user_id = ${RICH} returning balance_cents)
      insert into wallet.ledger (user_id, order_id, kind, amount_cents, balance_after_cents)
      select ${RICH}, ${orders.completed}::uuid, 'debit', ${2 * PRICE}, balance_cents from w`);
    // 2. A live reservation again for the rejected order (and the units it holds).
    await behindTheBack(
      sql`update storage.reservations set state = 'reserved', released_at = null where order_id = ${orders.noMoney}::uuid`,
    );
    await behindTheBack(sql`update storage.stock set available = available - 1, reserved = reserved + 1 where product_id = ${PLENTY}`);
    // 3. A debit for an order registry never made, an hour old, with its balance (the wallet's own books agree).
    await behindTheBack(sql`
      with w as (update wallet.wallets set balance_cents = balance_cents - 300 where user_id = ${OTHER} returning balance_cents)
      insert into wallet.ledger (user_id, order_id, kind, amount_cents, balance_after_cents, created_at)
      select ${OTHER}, ${stranger}::uuid, 'debit', 300, balance_cents, now() - interval '1 hour' from w`);
    // 4. A balance changed without a ledger row.
    await behindTheBack(sql`update wallet.wallets set balance_cents = balance_cents + 12345 where user_id = ${POOR}`);
    // 5. An outbox row left in flight for an hour (the relay only reclaims those at its next start).
    await behindTheBack(sql`
      insert into storage.outbox (id, topic, key, type, envelope, state, created_at)
      values (${crypto.randomUUID()}::uuid, 'rejected_orders', ${stranger}, 'OrderRejected', '{}'::jsonb, 'in_flight', now() - interval '1 hour')`);

    const expected = [
      // 1: the cross-check sees two debits on a completed order.
      `cross-check: order ${orders.completed} (completed, user ${RICH}): 2 debit(s) of ${4 * PRICE} cents`,
      // 2: the cross-check sees a compensated order holding stock.
      `cross-check: order ${orders.noMoney} (rejected, compensation done, user ${POOR}): still holds [1 x product ${PLENTY}]`,
      // 3: a debit for an order registry never made, not undone.
      `cross-check: ledger rows for order ${stranger}, which registry never made (registry never heard of it), not undone`,
      // 4: the wallet's own books.
      `wallet: user ${POOR}: balance ${PRICE / 2 + 12345} != deposits ${PRICE / 2} - debits 0 + refunds 0 = ${PRICE / 2} (off by 12345)`,
      // 5: storage's outbox.
      "storage: outbox row",
    ];
    const audit = await registryAudit();
    expect(audit.ok).toBe(false);
    for (const e of expected) expect(audit.violations.some((v) => v.startsWith(e))).toBe(true);
    expect(audit.violations.find((v) => v.startsWith("storage: outbox row"))).toContain("still in_flight after");
    expect(audit.violations).toHaveLength(expected.length);

    const run = await auditScript();
    console.log(`bun run audit on the broken books:\n${run.stdout}`);
    expect(run.code).toBe(1);
    const lines = run.stdout.trim().split("\n");
    for (const e of expected) expect(lines.some((l) => l.startsWith(e))).toBe(true);
    expect(lines.at(-1)).toStartWith(`audit ${expected.length} violation(s)`);
  }, 60_000);
});
