/**
 * One poller that follows every accepted order to its final state through `GET /orders`
 * pages (newest first, 100 a page), noting when it first sees each order final.
 *
 * Cheap by construction: a page fetched with `cursor=c&limit=l` always holds the same orders
 * (the l newest with seq < c; new orders only get larger seqs), so once a pending order has
 * been seen on such a page the poller re-reads just that page. Only orders still on the
 * moving first page, or not seen yet, need a walk from the top, which stops as soon as it
 * has seen them all; its first page is as small as the number of such orders allows. Rounds are
 * at least `minRoundMs` apart and the request rate is capped, so a large backlog of pending
 * orders makes the poller slower, not heavier.
 */

/** An order as `GET /orders` lists it (the fields the bench reads). */
interface ListedOrder {
  id: string;
  status: "pending" | "completed" | "rejected";
  reason: string | null;
  created_at: string;
  updated_at: string;
}

interface Page {
  orders: ListedOrder[];
  next_cursor: string | null;
}

/** What became of one order. */
export interface Outcome {
  /** performance.now() when the POST was sent (or was due, for scheduled arrivals). */
  sentAt: number;
  /** performance.now() when the poller first saw it completed or rejected. */
  finalAt: number;
  status: "completed" | "rejected";
  reason: string | null;
  /** Milliseconds between the registry's updated_at and the poller seeing it final. */
  pollLagMs: number;
  /** The shop's own timestamps: created_at, and updated_at of the final order (when it became final), epoch ms. */
  createdAtMs: number;
  finalAtMs: number;
}

/** A page that always holds the same orders. */
interface Window {
  cursor: number;
  limit: number;
}

interface Pending {
  sentAt: number;
  /** A page that holds this order, once known. */
  window?: Window;
}

type Final = Omit<Outcome, "sentAt">;

const MAX_PAGE = 100;
const MIN_PAGE = 10;
const MAX_WALK_PAGES = 200;

/** Follows orders to their final state; start() it, add each accepted order with track(). */
export class OrderTracker {
  private readonly pending = new Map<string, Pending>();
  private readonly outcomes = new Map<string, Outcome>();
  /** Seen final before its POST answered (the poller can be faster than the client). */
  private readonly earlyFinal = new Map<string, Final>();
  private running: Promise<void> | null = null;
  private stopping = false;
  /** Rounds and requests so far, and the time spent in rounds. */
  readonly stats = { rounds: 0, requests: 0, busyMs: 0, errors: 0 };

  constructor(
    private readonly registry: string,
    private readonly minRoundMs: number,
    private readonly maxRequestsPerSecond: number,
  ) {}

  /** Starts polling in the background. */
  start(): void {
    this.stopping = false;
    this.running ??= this.loop();
  }

  /** Stops polling after the current round. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.running;
    this.running = null;
  }

  /** Adds an accepted order, sent at `sentAt` (performance.now()). */
  track(id: string, sentAt: number): void {
    const early = this.earlyFinal.get(id);
    if (early) {
      this.earlyFinal.delete(id);
      this.outcomes.set(id, { sentAt, ...early });
    } else this.pending.set(id, { sentAt });
  }

  /** Orders accepted but not yet seen final. */
  pendingCount(): number {
    return this.pending.size;
  }

  /** The outcome of an order, once final. */
  outcome(id: string): Outcome | undefined {
    return this.outcomes.get(id);
  }

  /** Waits until no tracked order is pending, or `timeoutMs` passed; returns how many are still pending. */
  async drain(timeoutMs: number): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    while (this.pending.size > 0 && performance.now() < deadline) await Bun.sleep(50);
    return this.pending.size;
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      const started = performance.now();
      const before = this.stats.requests;
      try {
        await this.round();
      } catch (err) {
        this.stats.errors += 1;
        if (this.stats.errors <= 3) console.error(`order poller: ${err instanceof Error ? err.message : String(err)}`);
      }
      const requests = this.stats.requests - before;
      const spent = performance.now() - started;
      this.stats.rounds += 1;
      this.stats.busyMs += spent;
      const budgetMs = (requests * 1000) / this.maxRequestsPerSecond;
      await Bun.sleep(Math.max(1, this.minRoundMs - spent, budgetMs - spent));
    }
  }

  /** One pass: walk from the newest order down to the oldest unplaced pending one, then re-read known pages. */
  private async round(): Promise<void> {
    const unplaced = new Set<string>();
    for (const [id, p] of this.pending) if (p.window === undefined) unplaced.add(id);
    // The first page moves (it is never a window): keep it small when few orders are unplaced.
    const first = Math.min(MAX_PAGE, Math.max(MIN_PAGE, 2 * unplaced.size));
    let cursor: number | undefined;
    for (let pages = 0; pages < MAX_WALK_PAGES; pages++) {
      const page = await this.fetchPage(cursor, cursor === undefined ? first : MAX_PAGE);
      for (const o of page.orders) unplaced.delete(o.id);
      if (page.next_cursor === null || unplaced.size === 0) break;
      cursor = Number(page.next_cursor);
    }
    const windows = new Map<string, Window>();
    for (const { window: w } of this.pending.values()) if (w) windows.set(`${w.cursor}:${w.limit}`, w);
    for (const w of windows.values()) await this.fetchPage(w.cursor, w.limit);
  }

  /** Fetches one page and notes what it shows. */
  private async fetchPage(cursor: number | undefined, limit: number): Promise<Page> {
    const query = cursor === undefined ? `limit=${limit}` : `limit=${limit}&cursor=${cursor}`;
    this.stats.requests += 1;
    const res = await fetch(`${this.registry}/orders?${query}`);
    if (res.status !== 200) throw new Error(`GET /orders?${query}: ${res.status} ${await res.text()}`);
    const page = (await res.json()) as Page;
    const seenAt = performance.now();
    const window = cursor === undefined ? undefined : { cursor, limit };
    for (const o of page.orders) this.observe(o, seenAt, window);
    return page;
  }

  private observe(o: ListedOrder, seenAt: number, window: Window | undefined): void {
    const tracked = this.pending.get(o.id);
    if (o.status === "pending") {
      if (tracked && window) tracked.window ??= window;
      return;
    }
    if (!tracked && this.outcomes.has(o.id)) return;
    const finalAtMs = Date.parse(o.updated_at);
    const pollLagMs = performance.timeOrigin + seenAt - finalAtMs;
    const final: Final = {
      finalAt: seenAt,
      status: o.status,
      reason: o.reason,
      pollLagMs,
      createdAtMs: Date.parse(o.created_at),
      finalAtMs,
    };
    if (tracked) {
      this.pending.delete(o.id);
      this.outcomes.set(o.id, { sentAt: tracked.sentAt, ...final });
    } else if (!this.earlyFinal.has(o.id)) this.earlyFinal.set(o.id, final);
  }
}
