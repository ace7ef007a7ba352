/**
 * The live page's feeds in the split deployment (three processes, Kafka, PostgreSQL): registry's
 * stream follows an order and its overview reaches wallet and storage over HTTP, as the page needs.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { eventually } from "./support/eventually";
import { adminHeaders, call, getJson } from "./support/http";
import { restartService, type SplitShop, startSplitShop } from "./support/split-shop";
import { openSse, type SseStream } from "./support/sse";

let shop: SplitShop;
let stream: SseStream | undefined;
beforeAll(async () => {
  shop = await startSplitShop();
  // Registry learns where wallet and storage listen (free ports, known only once they started).
  await restartService(shop, "registry", { env: { REGISTRY_WALLET_URL: shop.urls.wallet, REGISTRY_STORAGE_URL: shop.urls.storage } });
}, 120_000);
afterAll(async () => {
  stream?.close();
  await shop?.stop();
});

test("split: the stream follows an order to completed; the overview shows wallet's and storage's figures", async () => {
  const base = shop.urls.registry;
  expect((await call(shop.urls.wallet, "POST", "/wallets/6101/deposits", { amount_cents: 3000 }, adminHeaders)).status).toBe(201);
  expect((await call(shop.urls.storage, "POST", "/stock/61/receipts", { quantity: 4 }, adminHeaders)).status).toBe(201);
  stream = await openSse(`${base}/live/events`);
  await stream.next((f) => f.kind === "event" && f.event === "snapshot", 30_000);
  const placed = await call<{ id: string }>(base, "POST", "/orders", { user_id: 6101, items: [{ product_id: 61, quantity: 1 }] });
  expect(placed.status).toBe(201);
  await stream.next(
    (f) =>
      f.kind === "event" &&
      f.event === "order" &&
      f.data.includes(placed.body.id) &&
      (JSON.parse(f.data) as { status: string }).status === "completed",
    60_000,
  );
  await eventually(async () => {
    const o = await getJson<{
      wallets: { user_id: number; balance_cents: number }[];
      stock: { product_id: number; available: number; reserved: number }[];
      unavailable: unknown[];
    }>(base, "/live/overview");
    expect(o.unavailable).toEqual([]);
    expect(o.wallets.find((w) => w.user_id === 6101)?.balance_cents).toBe(2000);
    expect(o.stock.find((s) => s.product_id === 61)).toMatchObject({ available: 3, reserved: 1 });
  }, 30_000);
}, 120_000);
