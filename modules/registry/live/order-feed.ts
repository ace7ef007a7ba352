/**
 * The live order feed behind `GET /live/events`: one poller per registry process reads the
 * timeline entries committed since its cursor (by any process sharing the database) and sends
 * every changed order, whole, to each connected client. It runs only while a client is connected.
 * A client that does not take what is sent is dropped, so that it cannot hold a slot (live-client.ts):
 * what waits in its stream, and what the kernel says of its connection (socket-states.ts), show it.
 */
import type { Database } from "../../../src/db/database";
import type { Logger } from "../../../src/log";
import { outsideRequest } from "../../../src/request-context";
import { EventCursor } from "./event-cursor";
import { addressKey, LiveClient, type StreamServer } from "./live-client";
import { eventsAfter, liveOrders, settledEventId } from "./order-reads";
import { connectionKey, normalizeAddress, zeroWindows } from "./socket-states";

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

/** Why a new client was turned away: the feed is full, its address has its share, or the feed stopped. */
export type Refusal = "too_many_clients" | "too_many_clients_from_address" | "stopped";

/** Why the feed dropped a client: too much unsent, waiting too long, or shed to make room for a newcomer. */
export type DropReason = "unsent_bytes" | "stalled" | "shed";

/** The running feed. */
export interface OrderFeed {
  /** A new client's stream of events, or why it is refused. `address` is the client's IP address, if known. */
  connect(opts: { signal?: AbortSignal; server?: StreamServer; address?: string; port?: number }):
    | { stream: ReadableStream<Uint8Array> }
    | { refused: Refusal };
  /** Clients connected now. */
  clients(): number;
  /** Ends every stream and the poller. */
  stop(): Promise<void>;
}

interface Client {
  live: LiveClient;
  /** What the per-address limit counts it under (addressKey); null when its address is unknown. */
  key: string | null;
  release: () => void;
}

/** A client that took nothing this long (data waiting, or its receive window closed) counts as stuck, and may be shed for a newcomer. */
const SHED_AFTER_MS = 1000;
/** How often the kernel's view of the connections (closed receive windows) is read, at most. */
const WINDOW_SAMPLE_MS = 500;
const EVENT_READ_LIMIT = 1000;
const encoder = new TextEncoder();
/** Sent before the snapshot: how long a disconnected EventSource waits before reconnecting. */
const RETRY = encoder.encode("retry: 3000\n\n");

/** One server-sent event. */
const sseFrame = (event: string, id: number, data: unknown) =>
  encoder.encode(`id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);

/** Told about each poll, and about clients dropped or refused, for metrics. */
export interface FeedObserver {
  polled(seconds: number, ordersSent: number): void;
  failed(): void;
  dropped(reason: DropReason): void;
  refused(reason: Exclude<Refusal, "stopped">): void;
}

const NO_OBSERVER: FeedObserver = { polled: () => {}, failed: () => {}, dropped: () => {}, refused: () => {} };

/** Starts the feed over registry's tables; nothing runs until a client connects. */
export function createOrderFeed(
  db: Database,
  log: Logger,
  options: Partial<OrderFeedOptions> = {},
  observer: FeedObserver = NO_OBSERVER,
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
  let lastWindowSample = 0;
  /** False once the kernel's tables turned out unreadable (not Linux): not tried again. */
  let kernelTables = true;

  /** Ends a client's stream; one dropped for a `reason` loses what is queued for it (it was not reading). */
  const drop = (client: Client, reason?: DropReason) => {
    if (!clients.delete(client)) return;
    client.release();
    const unsent = client.live.unsentBytes();
    client.live.end(reason !== undefined || unsent > 0);
    if (reason) {
      observer.dropped(reason);
      log.info("live client dropped: it does not take what is sent", { reason, unsent_bytes: unsent, address: client.live.address, clients: clients.size });
    } else log.debug("live client disconnected", { clients: clients.size });
  };

  const broadcast = (frame: Uint8Array) => {
    const now = Date.now();
    for (const client of clients) if (!client.live.send(frame, now)) drop(client);
  };

  /** Notes for each client whether the kernel sees its receive window closed (it reads nothing), every WINDOW_SAMPLE_MS at most. */
  const sampleWindows = async () => {
    if (!kernelTables || Date.now() - lastWindowSample < WINDOW_SAMPLE_MS) return;
    lastWindowSample = Date.now();
    const ports = new Set<number>();
    for (const c of clients) if (c.live.server?.port && c.live.port !== null) ports.add(c.live.server.port);
    if (ports.size === 0) return;
    const closed = await zeroWindows(ports);
    if (!closed) {
      kernelTables = false;
      log.info("live feed: the kernel's connection tables cannot be read; a client that does not read is seen only once its buffers are full");
      return;
    }
    const now = Date.now();
    for (const c of clients) {
      const { server, address, port } = c.live;
      if (!server || address === null || port === null) continue;
      c.live.noteWindow(closed.get(connectionKey(server.port, normalizeAddress(address), port)) === true, now);
    }
  };

  /** Drops the clients of a stopping server, and those that do not take what is sent. */
  const sweep = () => {
    const now = Date.now();
    for (const client of clients) {
      if (client.live.server && client.live.server.port === 0) drop(client);
      else if (client.live.unsentBytes() > opts.maxUnsentBytes) drop(client, "unsent_bytes");
      else if (client.live.waitingFor(now) >= opts.stallTimeoutMs) drop(client, "stalled");
    }
  };

  /** The client among `candidates` stuck longest (taking nothing for at least SHED_AFTER_MS), if any. */
  const stuckest = (candidates: Iterable<Client>): Client | null => {
    const now = Date.now();
    let worst: Client | null = null;
    for (const c of candidates) {
      if (c.live.waitingFor(now) >= SHED_AFTER_MS && (!worst || c.live.waitingFor(now) > worst.live.waitingFor(now))) worst = c;
    }
    return worst;
  };

  /** Makes room for a newcomer from `key`: sheds a stuck client if a limit is reached; else says which limit holds. */
  const admit = (key: string | null): Refusal | null => {
    if (stopped) return "stopped";
    if (key !== null) {
      const same = [...clients].filter((c) => c.key === key);
      if (same.length >= opts.maxClientsPerAddress) {
        const shed = stuckest(same);
        if (!shed) return "too_many_clients_from_address";
        drop(shed, "shed");
      }
    }
    if (clients.size >= opts.maxClients) {
      const shed = stuckest(clients);
      if (!shed) return "too_many_clients";
      drop(shed, "shed");
    }
    return null;
  };

  /** One round: drop clients that are gone or stuck, heartbeat, and send the orders that changed. */
  const poll = async () => {
    await sampleWindows();
    sweep();
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
    // The poller serves every client: its lines must not carry the id of the request that woke it.
    timer = outsideRequest(() => setTimeout(() => {
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
    }, opts.pollMs));
  };

  /** Sends the snapshot, then whatever was broadcast meanwhile. */
  const welcome = async (client: Client) => {
    try {
      await cursorNow();
      const orders = await liveOrders(db, { limit: opts.snapshotSize });
      const version = orders.reduce((v, o) => Math.max(v, o.version), 0);
      const snapshot = sseFrame("snapshot", version, { orders, trace_url: opts.traceUrl });
      const first = new Uint8Array(RETRY.byteLength + snapshot.byteLength);
      first.set(RETRY);
      first.set(snapshot, RETRY.byteLength);
      if (!client.live.welcome(first, Date.now())) drop(client);
    } catch (err) {
      log.warn("live snapshot failed", { err });
      drop(client);
    }
  };

  return {
    connect({ signal, server, address, port }) {
      const key = address === undefined ? null : addressKey(address);
      const refused = admit(key);
      if (refused) {
        if (refused !== "stopped") observer.refused(refused);
        return { refused };
      }
      const onGone = () => drop(client);
      const client: Client = {
        live: new LiveClient(address ?? null, port ?? null, server, onGone),
        key,
        release: () => signal?.removeEventListener("abort", onGone),
      };
      clients.add(client);
      signal?.addEventListener("abort", onGone, { once: true });
      log.debug("live client connected", { clients: clients.size });
      schedule();
      void welcome(client);
      return { stream: client.live.stream };
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

export type { StreamServer };
