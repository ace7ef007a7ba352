/** Swagger UI renders each service's routes in a real browser (headless Chromium), offline. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chromiumBinary, chromiumFlags, freshProfile } from "./support/chromium";
import { type ShopTarget, startInProcess } from "./support/shop-target";

let t: ShopTarget;
const profile = freshProfile();
beforeAll(async () => {
  t = await startInProcess();
});
afterAll(async () => {
  await t?.stop();
  profile.remove();
});

/** Loads `url` in headless Chromium, lets its scripts run, and returns the rendered DOM. */
async function renderedDom(url: string): Promise<string> {
  const proc = Bun.spawn([chromiumBinary(), ...chromiumFlags(profile.dir), "--virtual-time-budget=15000", "--dump-dom", url], {
    stdout: "pipe",
    stderr: "ignore",
  });
  const [dom, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  expect(code).toBe(0);
  return dom;
}

/** Each service's own business routes; every service also has health, metrics and admin routes. */
const expected: Record<keyof ShopTarget["urls"], string[]> = {
  registry: ["/products", "/orders", "/orders/{id}", "/admin/sagas/stuck", "/admin/audit", "/", "/live/events", "/live/overview"],
  wallet: ["/wallets", "/wallets/{user_id}", "/wallets/{user_id}/deposits"],
  storage: ["/stock", "/stock/{product_id}", "/stock/{product_id}/receipts"],
};
const everywhere = ["/health", "/metrics", "/admin/dead-letters", "/admin/dead-letters/{id}/redrive"];

test("each service's Swagger UI lists every operation of its OpenAPI document", async () => {
  for (const [name, base] of Object.entries(t.urls) as [keyof ShopTarget["urls"], string][]) {
    const spec = (await (await fetch(`${base}/openapi.json`)).json()) as { paths: Record<string, unknown> };
    const documented = Object.keys(spec.paths);
    for (const path of [...expected[name], ...everywhere]) expect(documented).toContain(path);
    const dom = await renderedDom(`${base}/swagger/`);
    const paths = [...dom.matchAll(/data-path="([^"]+)"/g)].map((m) => m[1]);
    expect(new Set(paths)).toEqual(new Set(documented));
    expect(dom).toContain(`Shop ${name}`);
  }
}, 120_000);
