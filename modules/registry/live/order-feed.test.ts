import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Database } from "../../../src/db/database";
import { createLogger } from "../../../src/log";
import { eventually } from "../../../test/support/eventually";
import { openModuleDatabase } from "../../../test/support/module-db";
import { parseFrames, type SseFrame } from "../../../test/support/sse";
import { registryModule } from "../index";
import { orderEvents, orders } from "../schema";
import { createOrderFeed } from "./order-feed";

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
  const orderIds = () => frames.flatMap((f) => (f.kind === "event" && f.event === "order" ? [(JSON.parse(f.data) as { id: string }).id] : []));
  return { frames, done, orderIds, cancel: () => reader.cancel() };
}

async function newOrder(eventId?: number): Promise<string> {
  const id = crypto.randomUUID();
  await db.transaction(async (tx) => {
    await tx.insert(orders).values({ id, userId: 1, totalCents: 100 });
    await tx.insert(orderEvents).values({ ...(eventId ? { id: eventId } : {}), orderId: id, service: "registry", step: "created", detail: null });
  });
  return id;
}

test("a new order reaches the client; an entry committed after a higher id is still sent", async () => {
  const feed = createOrderFeed(db, log, { pollMs: 20, gapWaitMs: 60_000 });
  const c = collect(feed.connect({}) ?? new ReadableStream());
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
  const a = collect(feed.connect({}) ?? new ReadableStream());
  expect(feed.connect({})).toBeNull();
  await a.cancel();
  expect(feed.clients()).toBe(0);
  const b = feed.connect({});
  expect(b).not.toBeNull();
  await feed.stop();
});

test("a client whose server is stopping (Bun sets its port to 0) is ended by the next poll", async () => {
  const feed = createOrderFeed(db, log, { pollMs: 20 });
  const server = { port: 8000 };
  const c = collect(feed.connect({ server }) ?? new ReadableStream());
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
