import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Database } from "../../../src/db/database";
import { createLogger } from "../../../src/log";
import { eventually } from "../../../test/support/eventually";
import { openModuleDatabase } from "../../../test/support/module-db";
import { parseFrames, type SseFrame } from "../../../test/support/sse";
import { registryModule } from "../index";
import { orderEvents, orders } from "../schema";
import { addressKey } from "./live-client";
import { createOrderFeed, type DropReason, type FeedObserver, type OrderFeed } from "./order-feed";
import { type LiveOrder, traceIdOf } from "./order-reads";

let db: Database;
beforeAll(async () => {
  db = await openModuleDatabase(registryModule);
});
afterAll(() => db.close());

const log = createLogger("silent");

/** Reads a feed stream in the background, collecting its frames. */
function collect(stream: ReadableStream<Uint8Array>) {
  const frames: SseFrame[] = [];
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const done = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      const parsed = parseFrames(buffer + decoder.decode(value, { stream: true }));
      buffer = parsed.rest;
      frames.push(...parsed.frames);
    }
  })();
  const orderIds = () =>
    frames.flatMap((f) => (f.kind === "event" && f.event === "order" ? [(JSON.parse(f.data) as { id: string }).id] : []));
  return { frames, done, orderIds, cancel: () => reader.cancel() };
}

/** The stream of an admitted client (the test fails if it was refused). */
function admitted(a: ReturnType<OrderFeed["connect"]>): ReadableStream<Uint8Array> {
  if ("refused" in a) throw new Error(`refused: ${a.refused}`);
  return a.stream;
}

/** An observer that remembers the clients dropped and refused. */
function recorder() {
  const dropped: DropReason[] = [];
  const refused: string[] = [];
  const observer: FeedObserver = { polled: () => {}, failed: () => {}, dropped: (r) => dropped.push(r), refused: (r) => refused.push(r) };
  return { dropped, refused, observer };
}

async function newOrder(eventId?: number, traceparent?: string): Promise<string> {
  const id = crypto.randomUUID();
  await db.transaction(async (tx) => {
    await tx.insert(orders).values({ id, userId: 1, totalCents: 100, traceparent });
    await tx
      .insert(orderEvents)
      .values({ ...(eventId ? { id: eventId } : {}), orderId: id, service: "registry", step: "created", detail: null });
  });
  return id;
}

test("a new order reaches the client; an entry committed after a higher id is still sent", async () => {
  const feed = createOrderFeed(db, log, { pollMs: 20, gapWaitMs: 60_000 });
  const c = collect(admitted(feed.connect({})));
  await eventually(() => c.frames.some((f) => f.kind === "event" && f.event === "snapshot"));
  const first = await newOrder();
  await eventually(() => c.orderIds().includes(first));
  // Ids taken in one order and committed in the other, as two connections can: the later id first.
  const base = 1_000_000;
  const later = await newOrder(base + 2);
  await eventually(() => c.orderIds().includes(later));
  const earlier = await newOrder(base + 1);
  await eventually(() => c.orderIds().includes(earlier));
  await feed.stop();
  await c.done;
  expect(feed.clients()).toBe(0);
});

test("the feed refuses clients past its limit, and takes one again once a client left", async () => {
  const feed = createOrderFeed(db, log, { pollMs: 20, maxClients: 1 });
  const a = collect(admitted(feed.connect({})));
  expect(feed.connect({})).toEqual({ refused: "too_many_clients" });
  await a.cancel();
  expect(feed.clients()).toBe(0);
  admitted(feed.connect({}));
  await feed.stop();
  expect(feed.connect({})).toEqual({ refused: "stopped" });
});

test("a client whose server is stopping (Bun sets its port to 0) is ended by the next poll", async () => {
  const feed = createOrderFeed(db, log, { pollMs: 20 });
  const server = { port: 8000 };
  const c = collect(admitted(feed.connect({ server })));
  await eventually(() => c.frames.length > 0);
  server.port = 0;
  await c.done;
  expect(feed.clients()).toBe(0);
  await feed.stop();
});

test("an aborted request drops its client", async () => {
  const feed = createOrderFeed(db, log, { pollMs: 20 });
  const abort = new AbortController();
  feed.connect({ signal: abort.signal });
  expect(feed.clients()).toBe(1);
  abort.abort();
  expect(feed.clients()).toBe(0);
  await feed.stop();
});

// The first test commits ids past the sequence; these orders take ids above them so that a new feed's cursor sees them.
let highEventId = 2_000_000;
const visibleOrder = (traceparent?: string) => newOrder(++highEventId, traceparent);

test("a client that takes nothing is dropped once more than maxUnsentBytes wait for it; one that reads is not", async () => {
  const rec = recorder();
  const feed = createOrderFeed(db, log, { pollMs: 20, maxUnsentBytes: 4096 }, rec.observer);
  // Nobody reads this stream: everything sent to it stays queued, as behind a socket that does not drain.
  const stuck = admitted(feed.connect({}));
  const reader = collect(admitted(feed.connect({})));
  await eventually(async () => {
    await visibleOrder();
    return rec.dropped.length > 0;
  });
  expect(rec.dropped).toEqual(["unsent_bytes"]);
  expect(feed.clients()).toBe(1);
  // What was queued for it is discarded: its stream is errored, not left to drain.
  await expect(stuck.getReader().read()).rejects.toThrow("live client dropped");
  const later = await visibleOrder();
  await eventually(() => reader.orderIds().includes(later));
  expect(rec.dropped).toEqual(["unsent_bytes"]);
  await feed.stop();
}, 30_000);

test("a client whose data waits stallTimeoutMs without being taken is dropped, heartbeats included", async () => {
  const rec = recorder();
  const feed = createOrderFeed(db, log, { pollMs: 20, heartbeatMs: 20, stallTimeoutMs: 300 }, rec.observer);
  feed.connect({});
  const reader = collect(admitted(feed.connect({})));
  await eventually(() => rec.dropped.length > 0);
  expect(rec.dropped).toEqual(["stalled"]);
  expect(feed.clients()).toBe(1);
  const heartbeats = () => reader.frames.filter((f) => f.kind === "comment").length;
  const seen = heartbeats();
  await eventually(() => heartbeats() > seen + 20);
  expect(rec.dropped).toEqual(["stalled"]);
  await feed.stop();
}, 30_000);

test("at the limit a stuck client is shed for a newcomer; with none stuck, the newcomer is refused", async () => {
  const rec = recorder();
  const feed = createOrderFeed(db, log, { pollMs: 20, maxClients: 2 }, rec.observer);
  const stuck = admitted(feed.connect({}));
  const reader = collect(admitted(feed.connect({})));
  // Nothing has waited yet: the feed is full.
  expect(feed.connect({})).toEqual({ refused: "too_many_clients" });
  expect(rec.refused).toEqual(["too_many_clients"]);
  // Once the unread client's data has waited a second, the next newcomer takes its place.
  const newcomer = collect(
    await eventually(() => {
      const a = feed.connect({});
      return "stream" in a && a.stream;
    }),
  );
  expect(rec.dropped).toEqual(["shed"]);
  await expect(stuck.getReader().read()).rejects.toThrow("live client dropped");
  expect(feed.clients()).toBe(2);
  const later = await visibleOrder();
  await eventually(() => reader.orderIds().includes(later) && newcomer.orderIds().includes(later));
  await feed.stop();
}, 30_000);

test("clients from one address (one /64 for IPv6) past maxClientsPerAddress are refused; other addresses are not", async () => {
  const rec = recorder();
  const feed = createOrderFeed(db, log, { pollMs: 20, maxClients: 20, maxClientsPerAddress: 2 }, rec.observer);
  const open = (address?: string) => collect(admitted(feed.connect(address === undefined ? {} : { address })));
  open("10.0.0.1");
  open("10.0.0.1");
  expect(feed.connect({ address: "10.0.0.1" })).toEqual({ refused: "too_many_clients_from_address" });
  expect(feed.connect({ address: "::ffff:10.0.0.1" })).toEqual({ refused: "too_many_clients_from_address" });
  open("10.0.0.2");
  open("2001:db8::1");
  open("2001:db8::2");
  expect(feed.connect({ address: "2001:db8:0:0:ffff::3" })).toEqual({ refused: "too_many_clients_from_address" });
  open("2001:db8:0:1::1");
  // A client whose address the server did not give counts against the global limit only.
  open();
  open();
  open();
  expect(feed.clients()).toBe(9);
  expect(rec.refused).toEqual(["too_many_clients_from_address", "too_many_clients_from_address", "too_many_clients_from_address"]);
  expect(rec.dropped).toEqual([]);
  await feed.stop();
});

test("addressKey: IPv4 as is (also mapped into IPv6), IPv6 by its /64", () => {
  expect(addressKey("192.0.2.7")).toBe("192.0.2.7");
  expect(addressKey("::ffff:192.0.2.7")).toBe("192.0.2.7");
  expect(addressKey("2001:db8::1")).toBe("2001:db8:0:0::/64");
  expect(addressKey("2001:DB8:0:0:1:2:3:4")).toBe("2001:db8:0:0::/64");
  expect(addressKey("2001:db8:0:1::1")).toBe("2001:db8:0:1::/64");
  expect(addressKey("::1")).toBe("0:0:0:0::/64");
  expect(addressKey("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
});

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const traceparentOf = (traceId: string) => `00-${traceId}-00f067aa0ba902b7-01`;

test("the snapshot carries trace_url, and every order (snapshot and updates) its trace id from the traceparent column, null without one", async () => {
  const untraced = await visibleOrder();
  const traced = await visibleOrder(traceparentOf(TRACE_ID));
  const template = "http://localhost:16686/trace/{trace_id}";
  const feed = createOrderFeed(db, log, { pollMs: 20, traceUrl: template });
  const c = collect(admitted(feed.connect({})));
  await eventually(() => c.frames.some((f) => f.kind === "event" && f.event === "snapshot"));
  const first = c.frames.find((f) => f.kind === "event" && f.event === "snapshot");
  const snapshot = JSON.parse(first?.kind === "event" ? first.data : "{}") as { orders: LiveOrder[]; trace_url: string | null };
  expect(snapshot.trace_url).toBe(template);
  const traceIds = new Map(snapshot.orders.map((o) => [o.id, o.trace_id]));
  expect(traceIds.get(traced)).toBe(TRACE_ID);
  expect(traceIds.get(untraced)).toBeNull();
  const otherTrace = crypto.randomUUID().replaceAll("-", "");
  const later = await visibleOrder(traceparentOf(otherTrace));
  const laterUntraced = await visibleOrder();
  await eventually(() => c.orderIds().includes(later) && c.orderIds().includes(laterUntraced));
  const sent = c.frames.flatMap((f) => (f.kind === "event" && f.event === "order" ? [JSON.parse(f.data) as LiveOrder] : []));
  expect(sent.find((o) => o.id === later)?.trace_id).toBe(otherTrace);
  expect(sent.find((o) => o.id === laterUntraced)?.trace_id).toBeNull();
  await feed.stop();
});

test("without a trace viewer the snapshot says trace_url: null", async () => {
  const feed = createOrderFeed(db, log, { pollMs: 20 });
  const c = collect(admitted(feed.connect({})));
  await eventually(() => c.frames.some((f) => f.kind === "event" && f.event === "snapshot"));
  const first = c.frames.find((f) => f.kind === "event" && f.event === "snapshot");
  expect((JSON.parse(first?.kind === "event" ? first.data : "{}") as { trace_url: unknown }).trace_url).toBeNull();
  await feed.stop();
});

test("traceIdOf: the traceparent's second field; null for none, a malformed one or the all-zero id", () => {
  expect(traceIdOf(traceparentOf(TRACE_ID))).toBe(TRACE_ID);
  expect(traceIdOf(null)).toBeNull();
  expect(traceIdOf("")).toBeNull();
  expect(traceIdOf(`00-${TRACE_ID.toUpperCase()}-00f067aa0ba902b7-01`)).toBeNull();
  expect(traceIdOf(`00-${TRACE_ID}-00f067aa0ba902b7`)).toBeNull();
  expect(traceIdOf(`00-${"0".repeat(32)}-00f067aa0ba902b7-01`)).toBeNull();
  expect(traceIdOf(`00-${TRACE_ID}"><b>-00f067aa0ba902b7-01`)).toBeNull();
});
