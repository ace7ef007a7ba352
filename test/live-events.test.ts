/** GET /live/events over plain HTTP: snapshot, an order's changes, heartbeats, disconnects, and a stop with clients connected. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { EventCursor } from "../modules/registry/live/event-cursor";
import { eventually } from "./support/eventually";
import { adminHeaders, call, getJson } from "./support/http";
import { type ShopTarget, startInProcess } from "./support/shop-target";
import { openSse, type SseFrame, type SseStream } from "./support/sse";

type LiveOrder = { id: string; status: string; reason: string | null; version: number; timeline: { service: string; step: string }[] };

let t: ShopTarget;
const streams: SseStream[] = [];
beforeAll(async () => {
  t = await startInProcess();
});
afterAll(async () => {
  for (const s of streams) s.close();
  await t?.stop();
});

const open = async () => {
  const s = await openSse(`${t.urls.registry}/live/events`);
  streams.push(s);
  return s;
};

/** `shop_live_clients` from registry's /metrics. */
async function liveClients(): Promise<number> {
  const text = await (await fetch(`${t.urls.registry}/metrics`)).text();
  const m = /^shop_live_clients(?:\{[^}]*\})? (\d+)/m.exec(text);
  if (!m) throw new Error("no shop_live_clients in /metrics");
  return Number(m[1]);
}

const orderEvent = (id: string, status?: string) => (f: SseFrame) =>
  f.kind === "event" &&
  f.event === "order" &&
  (JSON.parse(f.data) as LiveOrder).id === id &&
  (!status || (JSON.parse(f.data) as LiveOrder).status === status);

test("a client gets a snapshot, then each change of an order with id lines, then heartbeats; leaving is noticed", async () => {
  const user = 4101;
  const product = 41;
  expect((await call(t.urls.wallet, "POST", `/wallets/${user}/deposits`, { amount_cents: 10_000 }, adminHeaders)).status).toBe(201);
  expect((await call(t.urls.storage, "POST", `/stock/${product}/receipts`, { quantity: 5 }, adminHeaders)).status).toBe(201);
  const early = await call<{ id: string }>(t.urls.registry, "POST", "/orders", {
    user_id: user,
    items: [{ product_id: product, quantity: 1 }],
  });
  expect(early.status).toBe(201);
  await eventually(async () => (await getJson(t.urls.registry, `/orders/${early.body.id}`)).status === "completed");

  const s = await open();
  expect(s.response.status).toBe(200);
  expect(s.response.headers.get("content-type")).toStartWith("text/event-stream");
  const snapshot = await s.next((f) => f.kind === "event" && f.event === "snapshot");
  if (snapshot.kind !== "event") throw new Error("unreachable");
  const snapOrders = (JSON.parse(snapshot.data) as { orders: LiveOrder[] }).orders;
  expect(snapOrders.map((o) => o.id)).toContain(early.body.id);
  expect(snapOrders.find((o) => o.id === early.body.id)?.status).toBe("completed");
  expect(Number(snapshot.id)).toBeGreaterThan(0);
  expect(await liveClients()).toBe(1);

  const placed = await call<{ id: string }>(t.urls.registry, "POST", "/orders", {
    user_id: user,
    items: [{ product_id: product, quantity: 2 }],
  });
  expect(placed.status).toBe(201);
  const done = await s.next(orderEvent(placed.body.id, "completed"));
  if (done.kind !== "event") throw new Error("unreachable");
  const order = JSON.parse(done.data) as LiveOrder;
  expect(order.timeline.map((e) => `${e.service} ${e.step}`)).toEqual(
    expect.arrayContaining(["registry created", "wallet paid", "storage reserved", "registry completed"]),
  );
  expect(done.id).toBe(String(order.version));
  // Every copy of the order sent carries a higher id than the one before.
  const copies = s.frames.filter(orderEvent(placed.body.id)).map((f) => (f.kind === "event" ? Number(f.id) : 0));
  expect(copies).toEqual([...copies].sort((a, b) => a - b));

  // A rejected order carries its reason, and its compensation once done.
  const broke = await call<{ id: string }>(t.urls.registry, "POST", "/orders", {
    user_id: 4102,
    items: [{ product_id: product, quantity: 1 }],
  });
  const rejected = await s.next(
    (f) =>
      orderEvent(broke.body.id, "rejected")(f) &&
      f.kind === "event" &&
      (JSON.parse(f.data) as { compensation: string }).compensation === "done",
  );
  if (rejected.kind !== "event") throw new Error("unreachable");
  expect((JSON.parse(rejected.data) as LiveOrder).reason).toBe("unknown_wallet");

  await s.next((f) => f.kind === "comment" && f.text.startsWith("heartbeat"), 15_000);

  s.close();
  await eventually(async () => (await liveClients()) === 0, 10_000);
}, 60_000);

test("several clients get the same events; the poller runs only while one is connected", async () => {
  const polls = async () => Number(/^shop_live_polls_total (\S+)/m.exec(await (await fetch(`${t.urls.registry}/metrics`)).text())?.[1]);
  const [a, b] = await Promise.all([open(), open()]);
  await eventually(async () => (await liveClients()) === 2);
  const placed = await call<{ id: string }>(t.urls.registry, "POST", "/orders", {
    user_id: 4103,
    items: [{ product_id: 42, quantity: 1 }],
  });
  await Promise.all([a.next(orderEvent(placed.body.id, "rejected")), b.next(orderEvent(placed.body.id, "rejected"))]);
  a.close();
  b.close();
  await eventually(async () => (await liveClients()) === 0);
  const idle = await polls();
  // A quarter of a second per poll: a whole second with no client adds none.
  const before = Date.now();
  await eventually(() => Date.now() - before > 1000, 5000, 250);
  expect(await polls()).toBe(idle);
}, 60_000);

test("the routes are documented: the page as text/html, the stream as text/event-stream", async () => {
  const doc = await getJson<{
    paths: Record<string, { get?: { summary?: string; responses: Record<string, { content?: Record<string, unknown> }> } }>;
  }>(t.urls.registry, "/openapi.json");
  expect(Object.keys(doc.paths["/"]?.get?.responses["200"]?.content ?? {})).toEqual(["text/html"]);
  expect(Object.keys(doc.paths["/live/events"]?.get?.responses["200"]?.content ?? {})).toEqual(["text/event-stream"]);
  expect(doc.paths["/live/overview"]?.get?.summary).toBeTruthy();
  const page = await fetch(`${t.urls.registry}/`);
  expect(page.status).toBe(200);
  expect(page.headers.get("content-type")).toStartWith("text/html");
  const html = await page.text();
  expect(html).toContain("live/events");
  // Nothing is fetched from elsewhere: no absolute URLs in src or href.
  expect(html).not.toMatch(/(?:src|href)=["']?(?:https?:)?\/\//i);
});

test("GET /live/overview gives wallet's balances and storage's stock, without the admin token", async () => {
  expect((await call(t.urls.wallet, "POST", "/wallets/4104/deposits", { amount_cents: 777 }, adminHeaders)).status).toBe(201);
  const overview = await eventually(async () => {
    const o = await getJson<{
      wallets: { user_id: number; balance_cents: number }[];
      stock: { product_id: number }[];
      unavailable: unknown[];
    }>(t.urls.registry, "/live/overview");
    return o.wallets.some((w) => w.user_id === 4104) && o;
  });
  expect(overview.wallets.find((w) => w.user_id === 4104)?.balance_cents).toBe(777);
  expect(overview.stock.some((s) => s.product_id === 41)).toBe(true);
  expect(overview.unavailable).toEqual([]);
});

test("the event cursor waits for an id committed late, and gives up on one rolled back", () => {
  const c = new EventCursor(10, 1000);
  expect(c.accept([11, 13], 0)).toEqual([11, 13]);
  expect(c.after).toBe(11);
  expect(c.accept([13, 12], 10)).toEqual([12]);
  expect(c.after).toBe(13);
  expect(c.accept([15], 20)).toEqual([15]);
  expect(c.accept([15], 500)).toEqual([]);
  expect(c.after).toBe(13);
  expect(c.accept([], 1020)).toEqual([]);
  expect(c.after).toBe(15);
  expect(c.accept([20_000], 2000)).toEqual([20_000]);
  expect(c.after).toBeGreaterThanOrEqual(20_000 - 10_000);
});

test("stopping the shop does not wait for connected clients", async () => {
  const s = await open();
  await s.next((f) => f.kind === "event" && f.event === "snapshot");
  const started = performance.now();
  // The client never leaves by itself: a stop that waited for it would never return (the test's timeout says so).
  await t.stop();
  await s.ended;
  console.log(`stop with a client connected: ${Math.round(performance.now() - started)} ms, the stream ended by the server`);
}, 30_000);
