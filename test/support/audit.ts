/**
 * A black-box audit of the shop's books, through the HTTP API only: every order is final, money
 * and stock balance against what the caller put in, and each order's ledger rows fit its outcome.
 *
 * It returns a list of violations (empty when the books balance) rather than throwing, so that a
 * test can wait for it with `eventually` and then print every violation at once.
 *
 * The audited users and products must be the caller's own: every order for an audited product is
 * placed by an audited user (other suites sharing the database use other ids).
 *
 * It then runs the shop's own audit (src/saga/audit: each module's report from `GET /admin/audit/report`
 * and the cross-module check) over the whole database, and adds its violations.
 */
import { z } from "zod";
import type { ShopAudit } from "../../src/contracts/audit";
import { httpSources, auditShop as runShopAudit } from "../../src/saga/audit/shop-audit";
import { TEST_ADMIN_TOKEN } from "./http";

/** Base URL of each service. */
export interface ShopUrls {
  registry: string;
  wallet: string;
  storage: string;
}

/** What the caller put into the shop. */
export interface AuditInput {
  urls: ShopUrls;
  /** Cents deposited per user (users with no deposit are not audited). */
  deposits: ReadonlyMap<number, number>;
  /** Units received per product. */
  receipts: ReadonlyMap<number, number>;
  /** Ids of orders whose `POST /orders` answered 201: each must still exist. */
  acknowledged?: Iterable<string>;
  /** Rows `GET /wallets/{id}` shows at most; a ledger that long may be cut and cannot be audited per order. */
  ledgerPage?: number;
  /** Bearer token for the modules' audit reports (default: the test shops' ADMIN_TOKEN). */
  adminToken?: string;
}

/** An order as `GET /orders` lists it (the fields the audit reads). */
export type ListedOrder = z.infer<typeof OrderSchema>;

/** The outcome of an audit. */
export interface Audit {
  /** One readable sentence per broken rule; empty when everything balances. */
  violations: string[];
  /** Every order of the audited users. */
  orders: ListedOrder[];
  /** Orders by status, and rejected orders by reason. */
  counts: { completed: number; rejected: number; pending: number; reasons: Record<string, number> };
  /** The shop's own audit (its violations are among `violations`). */
  shop: ShopAudit;
}

const Cents = z.number().int();

const OrderSchema = z.object({
  id: z.string(),
  user_id: z.number().int(),
  status: z.string(),
  reason: z.string().nullable(),
  compensation: z.enum(["pending", "done"]).nullable(),
  total_cents: Cents,
  items: z.array(z.object({ product_id: z.number().int(), quantity: z.number().int() })),
});

const OrderPageSchema = z.object({ orders: z.array(OrderSchema), next_cursor: z.union([z.string(), z.number()]).nullable() });

const LedgerRowSchema = z.object({
  id: z.number().int(),
  kind: z.string(),
  amount_cents: Cents,
  order_id: z.string().nullable(),
});

const WalletSchema = z.object({ user_id: z.number().int(), balance_cents: Cents, ledger: z.array(LedgerRowSchema) });

const StockSchema = z.object({ product_id: z.number().int(), available: z.number().int(), reserved: z.number().int() });

const PAGE = 100;
const REQUEST_TIMEOUT_MS = 30_000;

/** GET `base + path`, parsed with `schema`; throws on a non-200 answer or an unexpected shape. */
async function getParsed<T>(base: string, path: string, schema: z.ZodType<T>): Promise<T> {
  const res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${text.slice(0, 300)}`);
  const parsed = schema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`GET ${path}: unexpected body: ${parsed.error.message}`);
  return parsed.data;
}

/** Every order of one user (or of everyone without `userId`), newest first, following the cursor. */
export async function listOrders(registry: string, userId?: number): Promise<ListedOrder[]> {
  const orders: ListedOrder[] = [];
  const seen = new Set<string>();
  let cursor: string | null = null;
  for (;;) {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (userId !== undefined) query.set("user_id", String(userId));
    if (cursor !== null) query.set("cursor", cursor);
    const page = await getParsed(registry, `/orders?${query}`, OrderPageSchema);
    for (const o of page.orders) {
      // A cursor that repeats or skips rows would make the audit wrong; say so instead.
      if (seen.has(o.id)) throw new Error(`GET /orders listed order ${o.id} twice while paging`);
      seen.add(o.id);
      orders.push(o);
    }
    if (page.next_cursor === null || page.orders.length === 0) return orders;
    cursor = String(page.next_cursor);
  }
}

/** Orders of the given users that are not final yet: pending, or rejected with compensations outstanding. */
export async function unfinishedOrders(registry: string, users: Iterable<number>): Promise<ListedOrder[]> {
  const lists = await Promise.all([...users].map((u) => listOrders(registry, u)));
  return lists.flat().filter((o) => o.status === "pending" || (o.status === "rejected" && o.compensation !== "done"));
}

/** Signed effect of a ledger row on the balance (amounts are shown as magnitudes). */
const signed = (kind: string, amount: number): number => (kind === "debit" ? -Math.abs(amount) : Math.abs(amount));

/** Audits the books; see the file comment for the rules. */
export async function auditShop(input: AuditInput): Promise<Audit> {
  const { urls, deposits, receipts } = input;
  const ledgerPage = input.ledgerPage ?? 50;
  const violations: string[] = [];
  const users = [...deposits.keys()].sort((a, b) => a - b);
  const products = [...receipts.keys()].sort((a, b) => a - b);

  const ordersByUser = new Map<number, ListedOrder[]>();
  await Promise.all(users.map(async (u) => ordersByUser.set(u, await listOrders(urls.registry, u))));
  const orders = users.flatMap((u) => ordersByUser.get(u) ?? []);
  const counts: Audit["counts"] = { completed: 0, rejected: 0, pending: 0, reasons: {} };
  const soldUnits = new Map<number, number>();

  // Every order final; completed orders add up to what was sold.
  for (const o of orders) {
    if (o.status === "completed") {
      counts.completed += 1;
      for (const item of o.items) soldUnits.set(item.product_id, (soldUnits.get(item.product_id) ?? 0) + item.quantity);
    } else if (o.status === "rejected") {
      counts.rejected += 1;
      const reason = o.reason ?? "(none)";
      counts.reasons[reason] = (counts.reasons[reason] ?? 0) + 1;
      if (o.compensation !== "done") violations.push(`order ${o.id} (user ${o.user_id}): rejected, compensation ${o.compensation}`);
    } else {
      counts.pending += 1;
      violations.push(`order ${o.id} (user ${o.user_id}): status ${o.status}, not final`);
    }
    const itemsTotal = o.items.reduce((s, i) => s + i.quantity, 0);
    if (itemsTotal <= 0) violations.push(`order ${o.id}: no units`);
  }

  // No acknowledged order was lost.
  if (input.acknowledged) {
    const listed = new Set(orders.map((o) => o.id));
    const lost = [...input.acknowledged].filter((id) => !listed.has(id));
    if (lost.length > 0) violations.push(`${lost.length} orders answered 201 but are not listed: ${lost.slice(0, 5).join(", ")}`);
  }

  // Money: balance = deposits - completed totals, and the ledger explains every order.
  const wallets = await Promise.all(users.map((u) => getParsed(urls.wallet, `/wallets/${u}`, WalletSchema)));
  for (const [i, u] of users.entries()) {
    const wallet = wallets[i];
    if (!wallet) continue;
    const deposited = deposits.get(u) ?? 0;
    const mine = ordersByUser.get(u) ?? [];
    const spent = mine.filter((o) => o.status === "completed").reduce((s, o) => s + o.total_cents, 0);
    if (wallet.balance_cents < 0) violations.push(`user ${u}: negative balance ${wallet.balance_cents}`);
    if (wallet.balance_cents !== deposited - spent) {
      violations.push(
        `user ${u}: balance ${wallet.balance_cents} != deposits ${deposited} - completed orders ${spent} = ${deposited - spent}` +
          ` (off by ${wallet.balance_cents - (deposited - spent)})`,
      );
    }
    violations.push(...auditLedger(u, wallet, deposited, mine, ledgerPage));
  }

  // Stock: available = received - sold, reserved = sold, nothing negative.
  const stock = await Promise.all(products.map((p) => getParsed(urls.storage, `/stock/${p}`, StockSchema)));
  for (const [i, p] of products.entries()) {
    const s = stock[i];
    if (!s) continue;
    const received = receipts.get(p) ?? 0;
    const sold = soldUnits.get(p) ?? 0;
    if (s.available < 0 || s.reserved < 0)
      violations.push(`product ${p}: negative stock (available ${s.available}, reserved ${s.reserved})`);
    if (s.available !== received - sold || s.reserved !== sold) {
      violations.push(
        `product ${p}: available ${s.available}, reserved ${s.reserved}; expected ${received - sold} and ${sold}` +
          ` (received ${received}, ${sold} units in completed orders)`,
      );
    }
  }
  for (const p of soldUnits.keys()) {
    if (!receipts.has(p)) violations.push(`product ${p}: sold in completed orders but not audited (no receipt given)`);
  }

  // The shop's own audit: every module's books and the rules across them, for the whole database.
  const shop = await runShopAudit(httpSources(urls, input.adminToken ?? TEST_ADMIN_TOKEN, REQUEST_TIMEOUT_MS));
  violations.push(...shop.violations);

  return { violations, orders, counts, shop };
}

/** Per-order ledger rules for one user's wallet, plus the ledger's own arithmetic. */
function auditLedger(
  userId: number,
  wallet: z.infer<typeof WalletSchema>,
  deposited: number,
  orders: ListedOrder[],
  ledgerPage: number,
): string[] {
  const out: string[] = [];
  const rows = wallet.ledger;
  if (rows.length >= ledgerPage) {
    return [`user ${userId}: ledger shows ${rows.length} rows, it may be cut; place fewer orders per user to audit it per order`];
  }
  // The rows add up to the balance (row order is not commit order under concurrency, so only the sum is checked).
  const sum = rows.reduce((s, r) => s + signed(r.kind, r.amount_cents), 0);
  if (sum !== wallet.balance_cents) out.push(`user ${userId}: ledger rows add up to ${sum}, balance is ${wallet.balance_cents}`);
  const depositRows = rows.filter((r) => r.kind === "deposit").reduce((s, r) => s + Math.abs(r.amount_cents), 0);
  if (depositRows !== deposited) out.push(`user ${userId}: ledger deposits ${depositRows}, expected ${deposited}`);

  const byOrder = new Map<string, { debits: number[]; refunds: number[] }>();
  for (const r of rows) {
    if (r.kind === "deposit") continue;
    if (r.order_id === null) {
      out.push(`user ${userId}: ledger row ${r.id} (${r.kind}) names no order`);
      continue;
    }
    const entry = byOrder.get(r.order_id) ?? { debits: [], refunds: [] };
    if (r.kind === "debit") entry.debits.push(Math.abs(r.amount_cents));
    else if (r.kind === "refund") entry.refunds.push(Math.abs(r.amount_cents));
    else out.push(`user ${userId}: ledger row ${r.id} has unknown kind ${r.kind}`);
    byOrder.set(r.order_id, entry);
  }
  const known = new Map(orders.map((o) => [o.id, o]));
  for (const id of byOrder.keys()) {
    if (!known.has(id)) out.push(`user ${userId}: ledger rows for order ${id}, which registry does not list for this user`);
  }
  for (const o of orders) {
    const { debits, refunds } = byOrder.get(o.id) ?? { debits: [], refunds: [] };
    const shape = `${debits.length} debit(s), ${refunds.length} refund(s)`;
    const amountsOk = [...debits, ...refunds].every((a) => a === o.total_cents);
    if (o.status === "completed") {
      if (debits.length !== 1 || refunds.length !== 0)
        out.push(`order ${o.id} (completed, user ${userId}): ${shape}; expected one debit, no refund`);
    } else if (o.status === "rejected") {
      const none = debits.length === 0 && refunds.length === 0;
      const undone = debits.length === 1 && refunds.length === 1;
      if (!none && !undone) {
        out.push(`order ${o.id} (rejected: ${o.reason}, user ${userId}): ${shape}; expected nothing, or one debit and one refund`);
      }
    }
    if (!amountsOk)
      out.push(`order ${o.id} (user ${userId}): ledger amounts ${[...debits, ...refunds].join(", ")} differ from total ${o.total_cents}`);
  }
  return out;
}
