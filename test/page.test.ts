/**
 * The live order page in headless Chromium: it places orders from its form and shows them reach
 * completed or rejected (with the reason) without a reload, with balances and stock following.
 * Leaves a screenshot in .tmp/artifacts/order-page.png.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { eq } from "drizzle-orm";
import { orders } from "../modules/registry/schema";
import { type Browser, launchChromium } from "./support/chromium";
import { eventually } from "./support/eventually";
import { adminHeaders, call, getJson } from "./support/http";
import { startInProcess } from "./support/shop-target";
import { openSse } from "./support/sse";

const ARTIFACTS = join(import.meta.dir, "../.tmp/artifacts");
const PAID = 5101; // 50.00 on the wallet
const POOR = 5102; // 5.00 on the wallet: short for 20.00
const PRODUCT = 51; // 10.00 each, 10 in stock

let t: Awaited<ReturnType<typeof startInProcess>>;
let browser: Browser | undefined;
beforeAll(async () => {
  t = await startInProcess();
});
afterAll(async () => {
  // Each in its own step, so that one failing does not leave the other running.
  await browser?.close().catch(() => {});
  await t?.stop();
});

/** Fills the form and presses the button, as a person would. */
async function placeFromForm(userId: number, productId: number, quantity: number): Promise<void> {
  const { page } = browser as Browser;
  await page.evaluate(`(() => {
    const set = (id, v) => { const i = document.getElementById(id); i.value = String(v); i.dispatchEvent(new Event("change")); };
    document.getElementById("answer").removeAttribute("data-status");
    set("user-id", ${userId}); set("product", ${productId}); set("quantity", ${quantity});
    document.getElementById("place").click();
  })()`);
  await page.waitFor(`document.getElementById("answer").dataset.status !== undefined`);
}

const row = (kind: "user-id" | "product-id", id: number) => `document.querySelector('tr[data-${kind}="${id}"]')`;
const order = (id: string) => `document.querySelector('li.order[data-order-id="${id}"]')`;

test("an order placed from the page goes live to completed, a short one to rejected with its reason", async () => {
  expect((await call(t.urls.wallet, "POST", `/wallets/${PAID}/deposits`, { amount_cents: 5000 }, adminHeaders)).status).toBe(201);
  expect((await call(t.urls.wallet, "POST", `/wallets/${POOR}/deposits`, { amount_cents: 500 }, adminHeaders)).status).toBe(201);
  expect((await call(t.urls.storage, "POST", `/stock/${PRODUCT}/receipts`, { quantity: 10 }, adminHeaders)).status).toBe(201);

  browser = await launchChromium({ width: 1366, height: 900 });
  const { page } = browser;
  const base = `${t.urls.registry}/`;
  await page.navigate(base);
  await page.evaluate("window.__loadedOnce = true");
  await page.waitFor(`document.getElementById("conn").dataset.state === "live"`);
  await page.waitFor(`document.querySelectorAll("#product option").length === 100`);
  await page.waitFor(`${row("user-id", PAID)}?.dataset.balanceCents === "5000"`);
  await page.waitFor(`${row("product-id", PRODUCT)}?.dataset.available === "10"`);

  await placeFromForm(PAID, PRODUCT, 2);
  const answer = await page.evaluate<{ status: string; orderId: string; text: string }>(
    `(() => { const a = document.getElementById("answer"); return { status: a.dataset.status, orderId: a.dataset.orderId, text: a.textContent }; })()`,
  );
  expect(answer.status).toBe("201");
  // Pending when answered; the line follows the order (the stream may even have been first).
  expect(answer.text).toMatch(/is (pending|completed)/);
  await page.waitFor(
    `document.getElementById("answer").dataset.orderStatus === "completed" && document.getElementById("answer").dataset.kind === "ok"`,
  );
  await page.waitFor(`${order(answer.orderId)}?.dataset.status === "completed"`);
  const steps = await page.evaluate<string>(`${order(answer.orderId)}.querySelector(".timeline").textContent`);
  for (const step of ["registry created", "wallet paid", "storage reserved", "registry completed"]) expect(steps).toContain(step);
  await page.waitFor(`${row("user-id", PAID)}?.dataset.balanceCents === "3000"`);
  await page.waitFor(`${row("product-id", PRODUCT)}?.dataset.available === "8" && ${row("product-id", PRODUCT)}?.dataset.reserved === "2"`);

  await placeFromForm(POOR, PRODUCT, 2);
  const rejectedId = await page.evaluate<string>(`document.getElementById("answer").dataset.orderId`);
  await page.waitFor(`${order(rejectedId)}?.dataset.status === "rejected"`);
  await page.waitFor(`${order(rejectedId)}.querySelector('[data-role="reason"]')?.textContent.includes("compensation done")`);
  expect(await page.evaluate<string>(`${order(rejectedId)}.querySelector('[data-role="reason"]').textContent`)).toContain(
    "insufficient_funds",
  );
  // The answer line no longer says pending in green: the order is rejected, and why.
  await page.waitFor(`document.getElementById("answer").dataset.kind === "error"`);
  expect(await page.evaluate<string>(`document.getElementById("answer").textContent`)).toContain("is rejected: insufficient_funds");
  // Storage reserved and released the two units; the poor wallet was never charged.
  await page.waitFor(`${row("product-id", PRODUCT)}?.dataset.available === "8" && ${row("product-id", PRODUCT)}?.dataset.reserved === "2"`);
  expect(await page.evaluate<string>(`${row("user-id", POOR)}.dataset.balanceCents`)).toBe("500");

  // A refused request shows the shop's 4xx answer.
  await placeFromForm(PAID, PRODUCT, 0);
  const refused = await page.evaluate<{ status: string; text: string }>(
    `(() => { const a = document.getElementById("answer"); return { status: a.dataset.status, text: a.textContent }; })()`,
  );
  expect(refused.status).toBe("400");
  expect(refused.text).toContain("invalid_request");

  // All of it live: the page was never reloaded, asked nothing but the shop, and threw nothing.
  expect(await page.evaluate<boolean>("window.__loadedOnce === true")).toBe(true);
  expect(page.requests.filter((u) => !u.startsWith(t.urls.registry) && !u.startsWith("about:") && !u.startsWith("data:"))).toEqual([]);
  expect(page.errors).toEqual([]);
  // The page names its icon (none): no request for /favicon.ico and its 404.
  expect(page.requests.filter((u) => u.includes("favicon"))).toEqual([]);

  await page.waitFor(`!document.querySelector(".flash, tr.changed")`);
  mkdirSync(ARTIFACTS, { recursive: true });
  const png = await page.screenshot();
  expect(png.subarray(1, 4).toString()).toBe("PNG");
  writeFileSync(join(ARTIFACTS, "order-page.png"), png);
}, 120_000);

test("a page refused a live stream (the server full, 429) tries again by itself and goes live once there is room", async () => {
  const full = await startInProcess({ REGISTRY_LIVE_MAX_CLIENTS_PER_ADDRESS: "1" });
  const holder = await openSse(`${full.urls.registry}/live/events`);
  try {
    browser ??= await launchChromium({ width: 1366, height: 900 });
    const { page } = browser;
    await page.navigate(`${full.urls.registry}/`);
    // The page's one stream is refused: this test holds the only slot of its address.
    await eventually(async () => {
      const text = await (await fetch(`${full.urls.registry}/metrics`)).text();
      expect(
        Number(text.match(/shop_live_clients_refused_total\{reason="too_many_clients_from_address"\} (\d+)/)?.[1] ?? 0),
      ).toBeGreaterThan(0);
    }, 30_000);
    expect(await page.evaluate<string>(`document.getElementById("conn").dataset.state`)).toBe("reconnecting");
    holder.close();
    await page.waitFor(`document.getElementById("conn").dataset.state === "live"`, 60_000);
  } finally {
    holder.close();
    await full.stop();
  }
}, 120_000);

test("with trace_url set, an order placed in a trace links to it in a new tab; an order without one, or a page without trace_url, has no link", async () => {
  const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
  // Characters that mean something in HTML and in a URL: they must reach the href as they are, and make no markup.
  const template = `http://traces.example/trace/{trace_id}?from=shop&x="<b>`;
  const traced = await startInProcess({ REGISTRY_TRACE_URL: template });
  try {
    /** An order of a user with no wallet (rejected at once), its traceparent set afterwards as tracing would have. */
    const placeIn = async (shop: Awaited<ReturnType<typeof startInProcess>>, userId: number, traceparent: string | null) => {
      const placed = await call<{ id: string }>(shop.urls.registry, "POST", "/orders", {
        user_id: userId,
        items: [{ product_id: 52, quantity: 1 }],
      });
      expect(placed.status).toBe(201);
      await eventually(
        async () => (await getJson<{ status: string }>(shop.urls.registry, `/orders/${placed.body.id}`)).status !== "pending",
      );
      if (traceparent) await shop.shop.db.autocommit((q) => q.update(orders).set({ traceparent }).where(eq(orders.id, placed.body.id)));
      return placed.body.id;
    };
    const traceparent = `00-${TRACE_ID}-00f067aa0ba902b7-01`;
    const linked = await placeIn(traced, 5201, traceparent);
    const plain = await placeIn(traced, 5202, null);
    const unconfigured = await placeIn(t, 5203, traceparent);

    browser ??= await launchChromium({ width: 1366, height: 900 });
    const { page } = browser;
    const link = (id: string) => `${order(id)}?.querySelector('a[data-role="trace"]')`;
    await page.navigate(`${traced.urls.registry}/`);
    await page.waitFor(`Boolean(${order(linked)} && ${order(plain)})`);
    const a = await page.evaluate<{ href: string; target: string; rel: string; text: string; fontSize: string; markup: number }>(
      `(() => { const a = ${link(linked)}; return { href: a.getAttribute("href"), target: a.target, rel: a.rel, text: a.textContent,
        fontSize: getComputedStyle(a).fontSize, markup: ${order(linked)}.querySelectorAll(".head b").length }; })()`,
    );
    expect(a).toEqual({
      href: template.replace("{trace_id}", TRACE_ID),
      target: "_blank",
      rel: "noopener noreferrer",
      text: "trace ↗",
      // The hashed style block still applies under the page's CSP.
      fontSize: "12px",
      markup: 0,
    });
    expect(await page.evaluate<boolean>(`${link(plain)} === null`)).toBe(true);

    await page.navigate(`${t.urls.registry}/`);
    await page.waitFor(`document.getElementById("conn").dataset.state === "live" && Boolean(${order(unconfigured)})`);
    expect(await page.evaluate<number>(`document.querySelectorAll('a[data-role="trace"]').length`)).toBe(0);
    expect(page.errors).toEqual([]);
  } finally {
    await traced.stop();
  }
}, 120_000);
