/**
 * The live order feed behind `GET /live/events`: one poller per registry process reads the
 * timeline entries committed since its cursor (by any process sharing the database) and sends
 * every changed order, whole, to each connected client. It runs only while a client is connected.
 * A client that does not take what is sent is dropped, so that it cannot hold a slot (live-client.ts):
 * what waits in its stream, and what the kernel says of its connection (socket-states.ts), show it.
 */
import type { Database } from "../../../src/db/database";
import type { Logger } from "../../../src/log";
import { createLoop, type Loop } from "../../../src/loop";
import { EventCursor } from "./event-cursor";
import { type Client, type DropReason, FeedClients, type FeedObserver, type Refusal } from "./feed-clients";
import { addressKey, LiveClient, type StreamServer } from "./live-client";
import { eventsAfter, liveOrders, settledEventId } from "./order-reads";

/** Tuning of the feed; the defaults suit a person watching a page. */
export interface OrderFeedOptions {
  /** How often the poller looks for new timeline entries. */
  pollMs: number;
  /** A comment line this often keeps idle connections (and Bun's 10 s idle timeout) open. */
  heartbeatMs: number;
  /** Orders in the snapshot a client gets on connecting. */
  snapshotSize: number;
  /** Orders sent per poll at most (the newest of those that changed): a storm does not flood the pages. */
  maxOrdersPerPoll: number;
  /** More clients than this are refused (503), unless a client that does not read can be shed. */
  maxClients: number;
  /** More clients than this from one address (an IPv6 /64) are refused (429), unless one of them does not read. */
  maxClientsPerAddress: number;
  /** A client with more than this still unsent when a poll starts is dropped (a poll's orders are always queued whole). */
  maxUnsentBytes: number;
  /** A client that took nothing this long (data waited without the socket taking all of it, or its receive window stayed closed) is dropped. */
  stallTimeoutMs: number;
  /** A missing timeline id is waited for this long (a transaction still committing), then skipped. */
  gapWaitMs: number;
  /** The trace viewer's URL with `{trace_id}` (registry.yaml's trace_url), told to the page in the snapshot; null: no trace links. */
  traceUrl: string | null;
}

const DEFAULT_FEED_OPTIONS: OrderFeedOptions = {
  pollMs: 250,
  heartbeatMs: 5000,
  snapshotSize: 30,
  maxOrdersPerPoll: 100,
  maxClients: 200,
  maxClientsPerAddress: 20,
  maxUnsentBytes: 1_048_576,
  stallTimeoutMs: 15_000,
  gapWaitMs: 5000,
  traceUrl: null,
};

/** The running feed. */
export interface OrderFeed {
  /** A new client's stream of events, or why it is refused. `address` is the client's IP address, if known. */
  connect(opts: {
    signal?: AbortSignal;
    server?: StreamServer;
    address?: string;
    port?: number;
  }): { stream: ReadableStream<Uint8Array> } | { refused: Refusal };
  /** Clients connected now. */
  clients(): number;
  /** Ends every stream and the poller. */
  stop(): Promise<void>;
}

const EVENT_READ_LIMIT = 1000;
const encoder = new TextEncoder();
/** Sent before the snapshot: how long a disconnected EventSource waits before reconnecting. */
const RETRY = encoder.encode("retry: 3000\n\n");

/** One server-sent event. */
const sseFrame = (event: string, id: number, data: unknown) =>
  encoder.encode(`id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);

const NO_OBSERVER: FeedObserver = { polled: () => {}, failed: () => {}, dropped: () => {}, refused: () => {} };

/** Starts the feed over registry's tables; nothing runs until a client connects. */
export function createOrderFeed(
  db: Database,
  log: Logger,
  options: Partial<OrderFeedOptions> = {},
  observer: FeedObserver = NO_OBSERVER,
): OrderFeed {
  const feed = new Feed(db, log, { ...DEFAULT_FEED_OPTIONS, ...options }, observer);
  return {
    connect: (opts) => feed.connect(opts),
    clients: () => feed.clients.size,
    stop: () => feed.stop(),
  };
}

/** The feed: its clients, and the poller that runs while any is connected. */
class Feed {
  readonly clients: FeedClients;
  /** The poller: every `pollMs` while a client is connected. */
  private readonly polls: Loop;
  /** Read once per spell of connected clients, before the first snapshot: what the snapshot misses, the poller sends. */
  private cursor: Promise<EventCursor> | null = null;
  private lastHeartbeat = Date.now();

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
    private readonly opts: OrderFeedOptions,
    private readonly observer: FeedObserver,
  ) {
    this.clients = new FeedClients(opts, log, observer);
    this.polls = createLoop({
      run: () => this.poll(),
      every: () => {
        if (this.clients.size > 0) return opts.pollMs;
        this.cursor = null;
        return null;
      },
      failed: (err) => {
        observer.failed();
        log.warn("live feed poll failed", { err });
      },
      // It runs for the clients, not on its own: not periodic work.
      periodic: false,
    });
  }

  connect({ signal, server, address, port }: Parameters<OrderFeed["connect"]>[0]): ReturnType<OrderFeed["connect"]> {
    const key = address === undefined ? null : addressKey(address);
    if (this.polls.stopped()) return { refused: "stopped" };
    const refused = this.clients.admit(key);
    if (refused) {
      this.observer.refused(refused);
      return { refused };
    }
    const onGone = () => this.clients.drop(client);
    const client: Client = {
      live: new LiveClient(address ?? null, port ?? null, server, onGone),
      key,
      release: () => signal?.removeEventListener("abort", onGone),
    };
    this.clients.add(client);
    signal?.addEventListener("abort", onGone, { once: true });
    this.log.debug("live client connected", { clients: this.clients.size });
    this.polls.runIn(this.opts.pollMs);
    void this.welcome(client);
    return { stream: client.live.stream };
  }

  async stop(): Promise<void> {
    await this.polls.stop();
    this.clients.dropAll();
  }

  private cursorNow(): Promise<EventCursor> {
    this.cursor ??= settledEventId(this.db, this.opts.gapWaitMs).then(
      (id) => new EventCursor(id, this.opts.gapWaitMs),
      (err) => {
        this.cursor = null;
        throw err;
      },
    );
    return this.cursor;
  }

  /** One round: drop clients that are gone or stuck, heartbeat, and send the orders that changed. */
  private async poll(): Promise<void> {
    await this.clients.sampleWindows();
    this.clients.sweep();
    if (Date.now() - this.lastHeartbeat >= this.opts.heartbeatMs) {
      this.lastHeartbeat = Date.now();
      this.clients.broadcast(encoder.encode(`: heartbeat ${new Date().toISOString()}\n\n`));
    }
    if (this.clients.size === 0) return;
    const started = performance.now();
    const at = await this.cursorNow();
    const rows = await eventsAfter(this.db, at.after, EVENT_READ_LIMIT);
    const fresh = new Set(
      at.accept(
        rows.map((r) => r.id),
        Date.now(),
      ),
    );
    const changed = [...new Set(rows.filter((r) => fresh.has(r.id)).map((r) => r.orderId))];
    // The newest orders matter to a page; in a storm the older changes are left out.
    const orders = changed.length ? await liveOrders(this.db, { ids: changed, limit: this.opts.maxOrdersPerPoll }) : [];
    // Oldest first, so that a page inserting each at the top ends newest first.
    for (const order of orders.reverse()) this.clients.broadcast(sseFrame("order", order.version, order));
    this.observer.polled((performance.now() - started) / 1000, orders.length);
  }

  /** Sends the snapshot, then whatever was broadcast meanwhile. */
  private async welcome(client: Client): Promise<void> {
    try {
      await this.cursorNow();
      const orders = await liveOrders(this.db, { limit: this.opts.snapshotSize });
      const version = orders.reduce((v, o) => Math.max(v, o.version), 0);
      const snapshot = sseFrame("snapshot", version, { orders, trace_url: this.opts.traceUrl });
      const first = new Uint8Array(RETRY.byteLength + snapshot.byteLength);
      first.set(RETRY);
      first.set(snapshot, RETRY.byteLength);
      if (!client.live.welcome(first, Date.now())) this.clients.drop(client);
    } catch (err) {
      this.log.warn("live snapshot failed", { err });
      this.clients.drop(client);
    }
  }
}

export type { DropReason, FeedObserver, Refusal, StreamServer };
