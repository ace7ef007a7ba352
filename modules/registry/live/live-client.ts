/**
 * One client of `GET /live/events`, and what it has not taken yet. Bun reads a streamed response
 * body only while the socket takes data: once the kernel's buffers for the connection are full it
 * stops reading, and what the feed enqueues waits in this stream's queue (counted in bytes, so
 * `desiredSize` is minus the bytes waiting). Bun asks for more (`pull`) once it wrote everything.
 * Those buffers take some MiB on loopback before that happens; the kernel says sooner that the
 * client takes nothing (its receive window is closed, socket-states.ts), which the feed notes here.
 */
import { normalizeAddress } from "./socket-states";

/** The HTTP server a stream is served by, as far as the feed needs it: Bun sets `port` to 0 once it is stopping. */
export interface StreamServer {
  readonly port: number;
}

/** A live client's stream, with the accounting the feed's limits need. */
export class LiveClient {
  readonly stream: ReadableStream<Uint8Array>;
  private controller: ReadableStreamDefaultController<Uint8Array> | null = null;
  /** When data started waiting with Bun not asking for more; null while Bun takes everything. */
  private waitingSince: number | null = null;
  /** Since when the kernel has seen the client's receive window closed; null while it is open (or not known). */
  private closedSince: number | null = null;
  /** Frames broadcast before the snapshot was sent: sent right after it. */
  private held: Uint8Array[] | null = [];
  private heldBytes = 0;

  constructor(
    /** Whose stream this is, for the per-address limit; null when the server did not say. */
    readonly address: string | null,
    /** The client's TCP port, to find its connection in the kernel's tables; null when the server did not say. */
    readonly port: number | null,
    readonly server: StreamServer | undefined,
    onCancel: () => void,
  ) {
    this.stream = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.controller = controller;
        },
        // Called when Bun reads with nothing queued: everything sent so far was taken.
        pull: () => {
          this.waitingSince = null;
        },
        cancel: () => onCancel(),
      },
      // Nothing is buffered ahead of a read: whatever is queued is what the socket did not take.
      new ByteLengthQueuingStrategy({ highWaterMark: 0 }),
    );
  }

  /** Bytes queued (or held for after the snapshot) that Bun has not read yet. */
  unsentBytes(): number {
    return Math.max(0, -(this.controller?.desiredSize ?? 0)) + this.heldBytes;
  }

  /**
   * How long the client has taken nothing: data waiting without Bun asking for more, or its receive
   * window closed, whichever is longer; 0 while it takes what is sent.
   */
  waitingFor(now: number): number {
    const since = Math.min(this.waitingSince ?? now, this.closedSince ?? now);
    return now - since;
  }

  /** Notes what the kernel says of the connection: whether the client's receive window is closed (it reads nothing). */
  noteWindow(closed: boolean, now: number): void {
    if (!closed) this.closedSince = null;
    else this.closedSince ??= now;
  }

  /** Queues a frame (before the snapshot: holds it); false once the stream is closed. */
  send(frame: Uint8Array, now: number): boolean {
    if (this.held) {
      this.held.push(frame);
      this.heldBytes += frame.byteLength;
      return true;
    }
    return this.enqueue(frame, now);
  }

  /** Sends the first frame (the snapshot), then what was held meanwhile; false once the stream is closed. */
  welcome(first: Uint8Array, now: number): boolean {
    const held = this.held ?? [];
    this.held = null;
    this.heldBytes = 0;
    return [first, ...held].every((frame) => this.enqueue(frame, now));
  }

  /** Ends the stream: `discard` throws away what is queued (a client that does not read), else it is sent first. */
  end(discard: boolean): void {
    this.held = null;
    this.heldBytes = 0;
    try {
      if (discard) this.controller?.error(new Error("live client dropped"));
      else this.controller?.close();
    } catch {
      // Closed already (the client went away).
    }
  }

  private enqueue(frame: Uint8Array, now: number): boolean {
    try {
      this.controller?.enqueue(frame);
    } catch {
      return false;
    }
    if (this.waitingSince === null && (this.controller?.desiredSize ?? 0) < 0) this.waitingSince = now;
    return true;
  }
}

/**
 * What the per-address limit counts by: an IPv4 address, or the /64 of an IPv6 one (what one
 * host is usually given). An IPv4 address mapped into IPv6 (`::ffff:10.0.0.1`) counts as itself.
 */
export function addressKey(ip: string): string {
  const normal = normalizeAddress(ip);
  return normal.includes(":") ? `${normal.split(":").slice(0, 4).join(":")}::/64` : normal;
}
