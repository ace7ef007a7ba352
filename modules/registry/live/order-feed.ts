/**
 * The live order feed behind `GET /live/events`: one poller per registry process reads the
 * timeline entries committed since its cursor (by any process sharing the database) and sends
 * every changed order, whole, to each connected client. It runs only while a client is connected.
 */
import type { Database } from "../../../src/db/database";
import type { Logger } from "../../../src/log";
import { EventCursor } from "./event-cursor";
import { eventsAfter, type LiveOrder, liveOrders, settledEventId } from "./order-reads";

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
  /** More clients than this are refused (503). */
  maxClients: number;
  /** A missing timeline id is waited for this long (a transaction still committing), then skipped. */
  gapWaitMs: number;
}

export const DEFAULT_FEED_OPTIONS: OrderFeedOptions = {
  pollMs: 250,
  heartbeatMs: 5000,
  snapshotSize: 30,
  maxOrdersPerPoll: 100,
  maxClients: 200,
  gapWaitMs: 5000,
};

/** The HTTP server a stream is served by, as far as the feed needs it: Bun sets `port` to 0 once it is stopping. */
export interface StreamServer {
  readonly port: number;
}

/** The running feed. */
export interface OrderFeed {
  /** A new client's stream of events, or null when the feed is full or stopped. */
  connect(opts: { signal?: AbortSignal; server?: StreamServer }): ReadableStream<Uint8Array> | null;
  /** Clients connected now. */
  clients(): number;
  /** Ends every stream and the poller. */
  stop(): Promise<void>;
}

interface Client {
  controller: ReadableStreamDefaultController<Uint8Array>;
  server?: StreamServer;
  /** Frames broadcast before this client's snapshot was sent: sent right after it. */
  backlog: Uint8Array[] | null;
  release: () => void;
}

/** Frames queued for a client that stopped reading; past this it is dropped. */
const MAX_QUEUED_FRAMES = 1000;
const EVENT_READ_LIMIT = 1000;
const encoder = new TextEncoder();

/** One server-sent event. */
export const sseFrame = (event: string, id: number, data: unknown) =>
  encoder.encode(`id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);

/** Told about each poll, for metrics. */
export interface FeedObserver {
  polled(seconds: number, ordersSent: number): void;
  failed(): void;
}

/** Starts the feed over registry's tables; nothing runs until a client connects. */
export function createOrderFeed(
  db: Database,
  log: Logger,
  options: Partial<OrderFeedOptions> = {},
  observer: FeedObserver = { polled: () => {}, failed: () => {} },
): OrderFeed {
  const opts = { ...DEFAULT_FEED_OPTIONS, ...options };
  const clients = new Set<Client>();
  // Read once per spell of connected clients, before the first snapshot: what the snapshot misses, the poller sends.
  let cursor: Promise<EventCursor> | null = null;
  const cursorNow = () =>
    (cursor ??= settledEventId(db, opts.gapWaitMs).then(
      (id) => new EventCursor(id, opts.gapWaitMs),
      (err) => {
        cursor = null;
        throw err;
      },
    ));
  let timer: Timer | null = null;
  let polling: Promise<void> | null = null;
  let stopped = false;
  let lastHeartbeat = Date.now();

  const drop = (client: Client) => {
    if (!clients.delete(client)) return;
    client.release();
    try {
      client.controller.close();
    } catch {
      // Closed already (the client went away).
    }
    log.debug("live client disconnected", { clients: clients.size });
  };

  const send = (client: Client, frame: Uint8Array) => {
    if (client.backlog) return void client.backlog.push(frame);
    if ((client.controller.desiredSize ?? 0) < -MAX_QUEUED_FRAMES) return drop(client);
    try {
      client.controller.enqueue(frame);
    } catch {
      drop(client);
    }
  };

  const broadcast = (frame: Uint8Array) => {
    for (const client of clients) send(client, frame);
  };

  /** One round: drop clients of a stopping server, heartbeat, and send the orders that changed. */
  const poll = async () => {
    for (const client of clients) if (client.server && client.server.port === 0) drop(client);
    if (Date.now() - lastHeartbeat >= opts.heartbeatMs) {
      lastHeartbeat = Date.now();
      broadcast(encoder.encode(`: heartbeat ${new Date().toISOString()}\n\n`));
    }
    if (clients.size === 0) return;
    const started = performance.now();
    const at = await cursorNow();
    const rows = await eventsAfter(db, at.after, EVENT_READ_LIMIT);
    const fresh = new Set(at.accept(rows.map((r) => r.id), Date.now()));
    const changed = [...new Set(rows.filter((r) => fresh.has(r.id)).map((r) => r.orderId))];
    // The newest orders matter to a page; in a storm the older changes are left out.
    const orders = changed.length ? await liveOrders(db, { ids: changed, limit: opts.maxOrdersPerPoll }) : [];
    // Oldest first, so that a page inserting each at the top ends newest first.
    for (const order of orders.reverse()) broadcast(sseFrame("order", order.version, order));
    observer.polled((performance.now() - started) / 1000, orders.length);
  };

  const schedule = () => {
    if (stopped || timer || clients.size === 0) return;
    timer = setTimeout(() => {
      timer = null;
      polling = poll()
        .catch((err) => {
          observer.failed();
          log.warn("live feed poll failed", { err });
        })
        .finally(() => {
          polling = null;
          if (clients.size === 0) cursor = null;
          schedule();
        });
    }, opts.pollMs);
  };

  /** Sends the snapshot, then whatever was broadcast meanwhile. */
  const welcome = async (client: Client) => {
    try {
      await cursorNow();
      const orders = await liveOrders(db, { limit: opts.snapshotSize });
      const version = orders.reduce((v, o) => Math.max(v, o.version), 0);
      const backlog = client.backlog ?? [];
      client.backlog = null;
      send(client, encoder.encode("retry: 3000\n\n"));
      send(client, sseFrame("snapshot", version, { orders }));
      for (const frame of backlog) send(client, frame);
    } catch (err) {
      log.warn("live snapshot failed", { err });
      drop(client);
    }
  };

  return {
    connect({ signal, server }) {
      if (stopped || clients.size >= opts.maxClients) return null;
      let client: Client | null = null;
      return new ReadableStream<Uint8Array>({
        start(controller) {
          const onAbort = () => client && drop(client);
          client = { controller, server, backlog: [], release: () => signal?.removeEventListener("abort", onAbort) };
          clients.add(client);
          signal?.addEventListener("abort", onAbort, { once: true });
          log.debug("live client connected", { clients: clients.size });
          schedule();
          void welcome(client);
        },
        cancel() {
          if (client) drop(client);
        },
      });
    },
    clients: () => clients.size,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      await polling;
      for (const client of [...clients]) drop(client);
    },
  };
}

export type { LiveOrder };
