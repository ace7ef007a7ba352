/**
 * A storm of orders for fault tests: clients place orders for prefunded users against stocked
 * products while the test breaks something, and books record what went in (deposits, receipts)
 * and what the shop acknowledged (201s), for test/support/audit.ts to check afterwards.
 */
import { type Audit, type AuditInput, auditShop, type ShopUrls, unfinishedOrders } from "./audit";
import { eventually } from "./eventually";
import { adminHeaders } from "./http";

/** Every fixture product costs 10.00. */
const PRICE_CENTS = 1000;
/** Deposits cycle through these: rich users only ever meet empty shelves, poor ones run out of money. */
const DEPOSITS = [80 * PRICE_CENTS, 12 * PRICE_CENTS, 4 * PRICE_CENTS, 1.5 * PRICE_CENTS];
/** Stock receipts cycle through these: three plentiful products, three scarce. */
const RECEIPTS = [1000, 1000, 1000, 8, 5, 3];
/** Orders per user at most, so the 50 ledger rows `GET /wallets/{id}` shows hold all of them. */
const MAX_ORDERS_PER_USER = 16;

/** What a test put in and what it was told. */
export interface Books {
  /** Cents deposited per user. */
  deposits: Map<number, number>;
  /** Units received per product. */
  receipts: Map<number, number>;
  /** Ids of orders whose POST answered 201. */
  acknowledged: Set<string>;
  /** Answers other than 201 by kind (`503 overloaded`, `503 not_ready`, `connection error`, `timeout`, ...). */
  refused: Record<string, number>;
  /** Refusals the storm was not told to expect: how many, and the first few. */
  stormErrors: { count: number; first: string[] };
}

/** Empty books. */
export function newBooks(): Books {
  return { deposits: new Map(), receipts: new Map(), acknowledged: new Set(), refused: {}, stormErrors: { count: 0, first: [] } };
}

/** The books as the audit takes them. */
function auditInput(urls: ShopUrls, books: Books): AuditInput {
  return { urls, deposits: books.deposits, receipts: books.receipts, acknowledged: books.acknowledged };
}

const REQUEST_TIMEOUT_MS = 30_000;

async function post(base: string, path: string, body: unknown, headers: Record<string, string>, timeoutMs: number) {
  const res = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  return { status: res.status, text: await res.text() };
}

async function postCreated(base: string, path: string, body: unknown): Promise<void> {
  const r = await post(base, path, body, adminHeaders, REQUEST_TIMEOUT_MS);
  if (r.status !== 201) throw new Error(`POST ${path}: ${r.status} ${r.text}`);
}

/** Deposits into each user's wallet (cycling DEPOSITS) and receives stock of each product (cycling RECEIPTS). */
export async function openAccounts(urls: ShopUrls, books: Books, users: readonly number[], products: readonly number[]): Promise<void> {
  for (const [i, u] of users.entries()) {
    const cents = DEPOSITS[i % DEPOSITS.length] as number;
    await postCreated(urls.wallet, `/wallets/${u}/deposits`, { amount_cents: cents });
    books.deposits.set(u, (books.deposits.get(u) ?? 0) + cents);
  }
  for (const [i, p] of products.entries()) {
    const quantity = RECEIPTS[i % RECEIPTS.length] as number;
    await postCreated(urls.storage, `/stock/${p}/receipts`, { quantity });
    books.receipts.set(p, (books.receipts.get(p) ?? 0) + quantity);
  }
}

/** How a storm behaves. */
export interface StormOptions {
  /** Users who place the orders (funded with openAccounts). */
  users: readonly number[];
  /** Products ordered, one to four different ones per order (stocked with openAccounts). */
  products: readonly number[];
  /** Concurrent clients. */
  clients: number;
  /** Orders per user at most (at most MAX_ORDERS_PER_USER, so that the audit sees every ledger row). */
  ordersPerUser?: number;
  /** Each client's pause between two orders, to spread the load over a fault (default 0: flat out). */
  thinkMs?: number;
  /** A client's pause after a refused or failed request (default 50 ms). */
  backoffMs?: number;
  /** Whether a refusal of this kind is expected now; otherwise it is a storm error. Default: only `503 overloaded`. */
  expected?: (kind: string) => boolean;
  /** Called after each acknowledged order with the storm's count so far. */
  onPlaced?: (placed: number) => void;
  /** Prefix of storm error messages. */
  label?: string;
  /** Abort a POST after this long (default 30 s); it counts as `timeout`. */
  requestTimeoutMs?: number;
}

/** A running storm. */
export interface Storm {
  /** Orders acknowledged by this storm so far. */
  readonly placed: number;
  /** POSTs waiting for an answer now. */
  readonly inFlight: number;
  /** Orders the storm may place at most (users x orders per user). */
  readonly capacity: number;
  /** Settles once every client stopped: out of orders to place, or halted. */
  finished: Promise<void>;
  /** Clients place no new order; from now on a failed request is not a storm error (it is what a kill looks like). */
  halt(): void;
  /** halt(), then wait for the clients. */
  stop(): Promise<void>;
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

/** What a non-201 answer or a failed request is called in Books.refused. */
function refusalKind(status: number | null, text: string, err?: unknown): string {
  if (status === null) return (err as Error)?.name === "TimeoutError" ? "timeout" : "connection error";
  try {
    const code = (JSON.parse(text) as { error?: { code?: unknown } }).error?.code;
    if (typeof code === "string") return `${status} ${code}`;
  } catch {}
  return `${status} (not a JSON error)`;
}

/** Starts `clients` clients placing orders until halted or out of orders to place. */
export function startStorm(urls: ShopUrls, books: Books, opts: StormOptions): Storm {
  const ordersPerUser = Math.min(opts.ordersPerUser ?? MAX_ORDERS_PER_USER, MAX_ORDERS_PER_USER);
  const expected = opts.expected ?? ((kind: string) => kind === "503 overloaded");
  const timeoutMs = opts.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
  const backoffMs = opts.backoffMs ?? 50;
  const label = opts.label ? `${opts.label}: ` : "";
  const slots = new Map(opts.users.map((u) => [u, ordersPerUser]));
  let halted = false;
  let placed = 0;
  let inFlight = 0;

  const refuse = (kind: string, detail: string) => {
    books.refused[kind] = (books.refused[kind] ?? 0) + 1;
    if (halted || expected(kind)) return;
    books.stormErrors.count += 1;
    if (books.stormErrors.first.length < 10) books.stormErrors.first.push(`${label}POST /orders: ${detail}`);
  };

  const client = async () => {
    while (!halted) {
      const open = opts.users.filter((u) => (slots.get(u) ?? 0) > 0);
      if (open.length === 0) return;
      const user = pick(open);
      slots.set(user, (slots.get(user) ?? 0) - 1);
      // One to four different products: storage reserves all of them or none.
      const items = shuffled(opts.products)
        .slice(0, 1 + Math.floor(Math.random() * 4))
        .map((p) => ({ product_id: p, quantity: 1 + Math.floor(Math.random() * 2) }));
      inFlight += 1;
      let ok = false;
      try {
        const r = await post(urls.registry, "/orders", { user_id: user, items }, {}, timeoutMs);
        if (r.status === 201) {
          ok = true;
          books.acknowledged.add((JSON.parse(r.text) as { id: string }).id);
          placed += 1;
          opts.onPlaced?.(placed);
        } else {
          // A 503 says no order was made: the user may try again.
          if (r.status === 503) slots.set(user, (slots.get(user) ?? 0) + 1);
          refuse(refusalKind(r.status, r.text), `${r.status} ${r.text.slice(0, 200)}`);
        }
      } catch (err) {
        refuse(refusalKind(null, "", err), `failed: ${(err as Error).message}`);
      } finally {
        inFlight -= 1;
      }
      const pause = ok ? (opts.thinkMs ?? 0) : backoffMs;
      if (pause > 0 && !halted) await Bun.sleep(pause);
    }
  };

  const finished = Promise.all(Array.from({ length: opts.clients }, client)).then(() => {});
  const halt = () => {
    halted = true;
  };
  return {
    get placed() {
      return placed;
    },
    get inFlight() {
      return inFlight;
    },
    capacity: opts.users.length * ordersPerUser,
    finished,
    halt,
    async stop() {
      halt();
      await finished;
    },
  };
}

/** Waits until no order of the books' users is pending or waiting for compensations; returns how long it took. */
export async function waitAllFinal(urls: ShopUrls, books: Books, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  await eventually(
    async () => {
      const left = await unfinishedOrders(urls.registry, books.deposits.keys());
      if (left.length > 0) {
        const o = left[0];
        throw new Error(`${left.length} orders not final, e.g. ${o?.id} (${o?.status}, compensation ${o?.compensation})`);
      }
    },
    timeoutMs,
    500,
  );
  return Date.now() - t0;
}

/** Audits until the books balance (compensations land shortly after registry decides), else returns the last audit. */
export async function auditUntilClean(urls: ShopUrls, books: Books, timeoutMs: number): Promise<Audit> {
  const input = auditInput(urls, books);
  return eventually(
    async () => {
      const a = await auditShop(input);
      return a.violations.length === 0 ? a : false;
    },
    timeoutMs,
    1000,
  ).catch(() => auditShop(input));
}

interface TimelineEntry {
  service: string;
  step: string;
  detail: string | null;
  at?: string;
}

/** Prints the saga timeline of the first few orders the violations name, to tell what went wrong. */
export async function printTimelines(registry: string, violations: string[], label: string, max = 5): Promise<void> {
  const ids = [...new Set(violations.flatMap((v) => v.match(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g) ?? []))];
  for (const id of ids.slice(0, max)) {
    try {
      const res = await fetch(`${registry}/orders/${id}`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      const body = (await res.json()) as { status?: string; timeline?: TimelineEntry[] };
      const steps = (body.timeline ?? [])
        .map((e) => `${e.at ? `${e.at.slice(11, 23)} ` : ""}${e.service}:${e.step}${e.detail ? ` (${e.detail})` : ""}`)
        .join(" → ");
      console.log(`[${label}] order ${id} (${body.status}): ${steps}`);
    } catch (err) {
      console.log(`[${label}] order ${id}: timeline unavailable: ${(err as Error).message}`);
    }
  }
}
