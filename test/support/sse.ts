/** A small server-sent events client for tests: reads a `text/event-stream` response frame by frame; and a raw TCP `GET`. */
import { connect, type Socket } from "node:net";

/** One frame: an event (with its fields) or a comment line. */
export type SseFrame = { kind: "event"; event: string; id: string | null; data: string } | { kind: "comment"; text: string };

/** An open stream: every frame so far, and a way to wait for one. */
export interface SseStream {
  response: Response;
  frames: SseFrame[];
  /** Resolves with the first frame (already received or still to come) that `match` accepts. */
  next(match: (f: SseFrame) => boolean, timeoutMs?: number): Promise<SseFrame>;
  close(): void;
  /** Resolves once the stream ended (closed by either side). */
  ended: Promise<void>;
}

/** Parses complete frames out of `buffer`; returns them and what is left. */
export function parseFrames(buffer: string): { frames: SseFrame[]; rest: string } {
  const frames: SseFrame[] = [];
  const blocks = buffer.split(/\r?\n\r?\n/);
  const rest = blocks.pop() ?? "";
  for (const block of blocks) {
    let event = "message";
    let id: string | null = null;
    const data: string[] = [];
    let sawField = false;
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith(":")) {
        frames.push({ kind: "comment", text: line.slice(1).trim() });
        continue;
      }
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "id") id = value;
      else if (field === "data") data.push(value);
      else continue;
      sawField = true;
    }
    if (sawField && data.length) frames.push({ kind: "event", event, id, data: data.join("\n") });
  }
  return { frames, rest };
}

/** Connects to `url` and reads it in the background until closed. */
export async function openSse(url: string): Promise<SseStream> {
  const abort = new AbortController();
  const response = await fetch(url, { headers: { accept: "text/event-stream" }, signal: abort.signal });
  const frames: SseFrame[] = [];
  const waiters = new Set<() => void>();
  const body = response.body;
  if (!body) throw new Error("no body");
  const ended = (async () => {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const parsed = parseFrames(buffer + decoder.decode(value, { stream: true }));
        buffer = parsed.rest;
        frames.push(...parsed.frames);
        for (const wake of waiters) wake();
      }
    } catch {
      // Aborted by close().
    }
  })();
  return {
    response,
    frames,
    ended,
    close: () => abort.abort(),
    next(match, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = frames.find(match);
          if (!hit) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(hit);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching frame within ${timeoutMs} ms; got ${frames.length} frames`));
        }, timeoutMs);
        waiters.add(check);
        check();
        void ended.then(() => waiters.has(check) && check());
      });
    },
  };
}

/** A `GET` sent over a raw TCP socket: its status and head, and the socket (reading on, or paused for good). */
export interface RawGet {
  status: number;
  head: string;
  socket: Socket;
  close(): void;
}

/**
 * Sends `GET url` over a raw TCP socket from `localAddress` (any 127.x.y.z works on loopback), waits
 * for the response head, then reads on (discarding) or, with `read: false`, never reads again:
 * the kernel's buffers fill, then the server's, as behind a client that does not read.
 */
export async function rawGet(url: string, opts: { localAddress?: string; read?: boolean } = {}): Promise<RawGet> {
  const { hostname, port, pathname, search } = new URL(url);
  const socket = connect({ host: hostname, port: Number(port), ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
  const head = await new Promise<string>((resolve, reject) => {
    let received = "";
    const onData = (chunk: Buffer) => {
      received += chunk.toString("latin1");
      const end = received.indexOf("\r\n\r\n");
      if (end < 0) return;
      socket.off("data", onData);
      if (opts.read === false) socket.pause();
      else socket.on("data", () => {});
      resolve(received.slice(0, end));
    };
    socket.on("data", onData);
    socket.once("error", reject);
    socket.once("connect", () =>
      socket.write(`GET ${pathname}${search} HTTP/1.1\r\nhost: ${hostname}:${port}\r\naccept: text/event-stream\r\n\r\n`),
    );
  });
  socket.on("error", () => {});
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
  return { status, head, socket, close: () => socket.destroy() };
}
