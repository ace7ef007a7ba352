/**
 * The live feed's connected clients: who is there, what each is sent, and which are dropped
 * because they do not take it (what waits in their stream, and what the kernel says of their
 * connection), or shed to make room for a newcomer.
 */
import type { Logger } from "../../../src/log";
import type { LiveClient } from "./live-client";
import { connectionKey, normalizeAddress, zeroWindows } from "./socket-states";

/** Why a new client was turned away: the feed is full, its address has its share, or the feed stopped. */
export type Refusal = "too_many_clients" | "too_many_clients_from_address" | "stopped";

/** Why the feed dropped a client: too much unsent, waiting too long, or shed to make room for a newcomer. */
export type DropReason = "unsent_bytes" | "stalled" | "shed";

/** Told about each poll, and about clients dropped or refused, for metrics. */
export interface FeedObserver {
  polled(seconds: number, ordersSent: number): void;
  failed(): void;
  dropped(reason: DropReason): void;
  refused(reason: Exclude<Refusal, "stopped">): void;
}

/** One connected client. */
export interface Client {
  live: LiveClient;
  /** What the per-address limit counts it under (addressKey); null when its address is unknown. */
  key: string | null;
  release: () => void;
}

/** The limits a client is held to (OrderFeedOptions). */
export interface ClientLimits {
  maxClients: number;
  maxClientsPerAddress: number;
  maxUnsentBytes: number;
  stallTimeoutMs: number;
}

/** A client that took nothing this long (data waiting, or its receive window closed) counts as stuck, and may be shed for a newcomer. */
const SHED_AFTER_MS = 1000;
/** How often the kernel's view of the connections (closed receive windows) is read, at most. */
const WINDOW_SAMPLE_MS = 500;

/** The clients of one feed. */
export class FeedClients {
  private readonly all = new Set<Client>();
  private lastWindowSample = 0;
  /** False once the kernel's tables turned out unreadable (not Linux): not tried again. */
  private kernelTables = true;

  constructor(
    private readonly limits: ClientLimits,
    private readonly log: Logger,
    private readonly observer: FeedObserver,
  ) {}

  /** Clients connected now. */
  get size(): number {
    return this.all.size;
  }

  add(client: Client): void {
    this.all.add(client);
  }

  /** Ends a client's stream; one dropped for a `reason` loses what is queued for it (it was not reading). */
  drop(client: Client, reason?: DropReason): void {
    if (!this.all.delete(client)) return;
    client.release();
    const unsent = client.live.unsentBytes();
    client.live.end(reason !== undefined || unsent > 0);
    if (reason) {
      this.observer.dropped(reason);
      this.log.info("live client dropped: it does not take what is sent", {
        reason,
        unsent_bytes: unsent,
        address: client.live.address,
        clients: this.all.size,
      });
    } else this.log.debug("live client disconnected", { clients: this.all.size });
  }

  /** Ends every stream. */
  dropAll(): void {
    for (const client of [...this.all]) this.drop(client);
  }

  broadcast(frame: Uint8Array): void {
    const now = Date.now();
    for (const client of this.all) if (!client.live.send(frame, now)) this.drop(client);
  }

  /** Notes for each client whether the kernel sees its receive window closed (it reads nothing), every WINDOW_SAMPLE_MS at most. */
  async sampleWindows(): Promise<void> {
    if (!this.kernelTables || Date.now() - this.lastWindowSample < WINDOW_SAMPLE_MS) return;
    this.lastWindowSample = Date.now();
    const ports = new Set<number>();
    for (const c of this.all) if (c.live.server?.port && c.live.port !== null) ports.add(c.live.server.port);
    if (ports.size === 0) return;
    const closed = await zeroWindows(ports);
    if (!closed) {
      this.kernelTables = false;
      this.log.info(
        "live feed: the kernel's connection tables cannot be read; a client that does not read is seen only once its buffers are full",
      );
      return;
    }
    const now = Date.now();
    for (const c of this.all) {
      const { server, address, port } = c.live;
      if (!server || address === null || port === null) continue;
      c.live.noteWindow(closed.get(connectionKey(server.port, normalizeAddress(address), port)) === true, now);
    }
  }

  /** Drops the clients of a stopping server, and those that do not take what is sent. */
  sweep(): void {
    const now = Date.now();
    for (const client of this.all) {
      if (client.live.server && client.live.server.port === 0) this.drop(client);
      else if (client.live.unsentBytes() > this.limits.maxUnsentBytes) this.drop(client, "unsent_bytes");
      else if (client.live.waitingFor(now) >= this.limits.stallTimeoutMs) this.drop(client, "stalled");
    }
  }

  /** Makes room for a newcomer from `key`: sheds a stuck client if a limit is reached; else says which limit holds. */
  admit(key: string | null): Exclude<Refusal, "stopped"> | null {
    if (key !== null) {
      const same = [...this.all].filter((c) => c.key === key);
      if (same.length >= this.limits.maxClientsPerAddress) {
        const shed = stuckest(same);
        if (!shed) return "too_many_clients_from_address";
        this.drop(shed, "shed");
      }
    }
    if (this.all.size >= this.limits.maxClients) {
      const shed = stuckest(this.all);
      if (!shed) return "too_many_clients";
      this.drop(shed, "shed");
    }
    return null;
  }
}

/** The client among `candidates` stuck longest (taking nothing for at least SHED_AFTER_MS), if any. */
function stuckest(candidates: Iterable<Client>): Client | null {
  const now = Date.now();
  let worst: Client | null = null;
  for (const c of candidates) {
    if (c.live.waitingFor(now) >= SHED_AFTER_MS && (!worst || c.live.waitingFor(now) > worst.live.waitingFor(now))) worst = c;
  }
  return worst;
}
