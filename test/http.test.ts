/** HTTP through the real servers: every route, the OpenAPI documents, and bad input that changes nothing. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { loadSettings } from "../src/config";
import { adminToken } from "../src/http/auth";
import { createLogger } from "../src/log";
import { eventually } from "./support/eventually";
import { adminHeaders, call, getJson, TEST_ADMIN_TOKEN } from "./support/http";
import { startPostgresCluster } from "./support/postgres-cluster";
import { createDatabase, type ShopTarget, startInProcess } from "./support/shop-target";

let t: ShopTarget;
beforeAll(async () => {
  t = await startInProcess();
});
afterAll(() => t.stop());

const snapshot = async () => ({
  wallets: await getJson(t.urls.wallet, "/wallets"),
  stock: await getJson(t.urls.storage, "/stock"),
  orders: await getJson(t.urls.registry, "/orders?limit=100"),
});

describe("routes", () => {
  test("every route answers, with and without a trailing slash", async () => {
    const r = t.urls.registry;
    expect((await getJson(r, "/products")).products).toHaveLength(100);
    expect((await getJson(r, "/products/")).products[0]).toEqual({ id: 1, sku: "T-1", name: "Test product 1", price_cents: 1000 });
    expect((await call(t.urls.wallet, "POST", "/wallets/77/deposits/", { amount_cents: 5000 }, adminHeaders)).status).toBe(201);
    expect((await call(t.urls.storage, "POST", "/stock/90/receipts", { quantity: 2 }, adminHeaders)).status).toBe(201);
    const placed = await call(r, "POST", "/orders/", { user_id: 77, items: [{ product_id: 90, quantity: 2 }] });
    expect(placed.status).toBe(201);
    expect(placed.body).toMatchObject({ user_id: 77, status: "pending", total_cents: 2000 });
    const done = await eventually(async () => {
      const o = await getJson(r, `/orders/${placed.body.id}/`);
      return o.status === "completed" ? o : false;
    });
    expect(done.items).toEqual([{ product_id: 90, quantity: 2, unit_price_cents: 1000, line_total_cents: 2000 }]);
    expect((await getJson(r, "/orders?user_id=77")).orders[0].id).toBe(placed.body.id);
    expect((await getJson(t.urls.wallet, "/wallets")).wallets).toContainEqual(
      expect.objectContaining({ user_id: 77, balance_cents: 3000 }),
    );
    expect(await getJson(t.urls.wallet, "/wallets/77/")).toMatchObject({ balance_cents: 3000 });
    expect((await getJson(t.urls.storage, "/stock/")).stock).toContainEqual(
      expect.objectContaining({ product_id: 90, available: 0, reserved: 2 }),
    );
    expect(await getJson(t.urls.storage, "/stock/90")).toMatchObject({ available: 0, reserved: 2 });
  });

  test("each service serves health, metrics, Swagger UI and an OpenAPI 3.1 document", async () => {
    const expected: Record<string, string[]> = {
      registry: ["/products", "/orders", "/orders/{id}"],
      wallet: ["/wallets", "/wallets/{user_id}", "/wallets/{user_id}/deposits"],
      storage: ["/stock", "/stock/{product_id}", "/stock/{product_id}/receipts"],
    };
    for (const [name, base] of Object.entries(t.urls)) {
      expect((await call(base, "GET", "/health")).status).toBe(200);
      const metrics = await fetch(`${base}/metrics`);
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toContain("shop_outbox_pending");
      for (const path of ["/swagger", "/swagger/"]) {
        const ui = await fetch(`${base}${path}`);
        expect(ui.status).toBe(200);
        expect(await ui.text()).toContain("swagger-ui");
      }
      // test/openapi.test.ts validates the documents and holds them to what the services answer.
      const doc = await getJson(base, "/openapi.json");
      expect(doc.openapi).toBe("3.1.0");
      expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/health", ...(expected[name] ?? [])]));
    }
  });

  test("health fails with 503 when a check outlasts its timeout, and rejects a bad timeout", async () => {
    expect((await call(t.urls.wallet, "GET", "/health?timeout=abc")).status).toBe(400);
    expect((await call(t.urls.wallet, "GET", "/health?timeout=-1")).status).toBe(400);
    const r = await call(t.urls.wallet, "GET", "/health?timeout=0.05");
    expect([200, 503]).toContain(r.status); // a fast machine may answer in time
    expect(r.body.checks.database.status).toBe(r.status === 200 ? "ok" : "fail");
  });
});

describe("bad input answers 4xx with a JSON error and changes nothing", () => {
  const big = "x".repeat(1_100_000); // past the default BODY_LIMIT_BYTES (1 MiB)
  const cases: [string, string, string, unknown, number, Record<string, string>?][] = [
    ["registry", "POST", "/orders", "{not json", 400],
    ["registry", "POST", "/orders", "", 400],
    ["registry", "POST", "/orders", { user_id: 1, items: [{ product_id: 1, quantity: 1 }] }, 415, { "content-type": "text/plain" }],
    ["registry", "POST", "/orders", [], 400],
    ["registry", "POST", "/orders", { user_id: "1", items: [{ product_id: 1, quantity: 1 }] }, 400],
    ["registry", "POST", "/orders", { user_id: 1, items: [] }, 400],
    ["registry", "POST", "/orders", { user_id: 1, items: [{ product_id: 1, quantity: -1 }] }, 400],
    ["registry", "POST", "/orders", { user_id: 1, items: [{ product_id: 1, quantity: 0 }] }, 400],
    ["registry", "POST", "/orders", { user_id: 1, items: [{ product_id: 1, quantity: 1.5 }] }, 400],
    ["registry", "POST", "/orders", { user_id: 1, items: [{ product_id: 1, quantity: 1e12 }] }, 400],
    [
      "registry",
      "POST",
      "/orders",
      {
        user_id: 1,
        items: [
          { product_id: 1, quantity: 1 },
          { product_id: 1, quantity: 1 },
        ],
      },
      422,
    ],
    ["registry", "POST", "/orders", { user_id: 1, items: [{ product_id: 123456, quantity: 1 }] }, 422],
    ["registry", "POST", "/orders", { user_id: -5, items: [{ product_id: 1, quantity: 1 }] }, 400],
    ["registry", "POST", "/orders", { user_id: 1, items: [{ product_id: 1, quantity: 1, note: big }] }, 413],
    ["registry", "GET", "/orders?user_id=abc", undefined, 400],
    ["registry", "GET", "/orders?limit=0", undefined, 400],
    ["registry", "GET", "/orders?limit=1000", undefined, 400],
    ["registry", "GET", "/orders?cursor=-3", undefined, 400],
    ["registry", "GET", "/orders/not-a-uuid", undefined, 400],
    ["registry", "GET", `/orders/${crypto.randomUUID()}`, undefined, 404],
    ["registry", "GET", "/nowhere", undefined, 404],
    ["wallet", "GET", "/wallets/abc", undefined, 400],
    ["wallet", "GET", "/wallets/424242", undefined, 404],
    ["wallet", "POST", "/wallets/1/deposits", { amount_cents: -100 }, 400, adminHeaders],
    ["wallet", "POST", "/wallets/1/deposits", { amount_cents: 10.5 }, 400, adminHeaders],
    ["wallet", "POST", "/wallets/1/deposits", { amount_cents: 1e15 }, 400, adminHeaders],
    ["wallet", "POST", "/wallets/1/deposits", { amount: 100 }, 400, adminHeaders],
    ["wallet", "POST", "/wallets/0/deposits", { amount_cents: 100 }, 400, adminHeaders],
    ["wallet", "POST", "/wallets/99999999999/deposits", { amount_cents: 100 }, 400, adminHeaders],
    ["storage", "GET", "/stock/999999", undefined, 404],
    ["storage", "POST", "/stock/999999/receipts", { quantity: 1 }, 404, adminHeaders],
    ["storage", "POST", "/stock/1/receipts", { quantity: 0 }, 400, adminHeaders],
    ["storage", "POST", "/stock/1/receipts", "[1,2", 400, adminHeaders],
    ["storage", "POST", "/stock/1/receipts", { quantity: 1, pad: big }, 413, adminHeaders],
  ];

  // Every row gets all six arguments: bun takes a missing trailing argument for a done callback.
  const rows = cases.map(([service, method, path, body, status, headers]) => [service, method, path, status, body, headers ?? {}] as const);
  test.each(rows)("%s %s %s -> %d", async (service, method, path, status, body, headers) => {
    const before = await snapshot();
    const base = t.urls[service as keyof ShopTarget["urls"]];
    const r = await call(base, method, path, body, headers);
    expect(r.status).toBe(status);
    expect(r.headers.get("content-type") ?? "").toContain("application/json");
    expect(typeof r.body.error.code).toBe("string");
    expect(typeof r.body.error.message).toBe("string");
    expect(JSON.stringify(r.body)).not.toMatch(/at .*\.ts|select |insert /i);
    expect(await snapshot()).toEqual(before);
  });

  test("a body far past the limit is refused before it is read", async () => {
    const before = await snapshot();
    const r = await fetch(`${t.urls.registry}/orders`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ user_id: 1, items: [{ product_id: 1, quantity: 1 }], pad: "y".repeat(5_000_000) }),
    });
    expect(r.status).toBe(413);
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe("payload_too_large");
    expect(await snapshot()).toEqual(before);
  });
});

describe("admin writes need the admin token", () => {
  const writes = [
    ["wallet", "/wallets/7/deposits", { amount_cents: 500 }],
    ["storage", "/stock/7/receipts", { quantity: 3 }],
  ] as const;
  const refused: [string, Record<string, string>][] = [
    ["no Authorization", {}],
    ["a wrong token", { authorization: "Bearer not-the-admin-token-at-all" }],
    ["the token one character short", { authorization: `Bearer ${TEST_ADMIN_TOKEN.slice(0, -1)}` }],
    ["the token as Basic credentials", { authorization: `Basic ${TEST_ADMIN_TOKEN}` }],
    ["an empty bearer", { authorization: "Bearer " }],
  ];

  test.each(refused)("%s: 401 with WWW-Authenticate, nothing changes", async (_, headers) => {
    for (const [service, path, body] of writes) {
      const before = await snapshot();
      const r = await call(t.urls[service], "POST", path, body, headers);
      expect(r.status).toBe(401);
      expect(r.headers.get("www-authenticate") ?? "").toStartWith("Bearer");
      expect(r.body.error.code).toBe("unauthorized");
      expect(await snapshot()).toEqual(before);
    }
  });

  test("with the token: 201 (the scheme name in any case)", async () => {
    const before = await getJson(t.urls.wallet, "/wallets/8").catch(() => ({ balance_cents: 0 }));
    const r = await call(
      t.urls.wallet,
      "POST",
      "/wallets/8/deposits",
      { amount_cents: 250 },
      { authorization: `bearer ${TEST_ADMIN_TOKEN}` },
    );
    expect(r.status).toBe(201);
    expect(r.body.balance_cents).toBe(before.balance_cents + 250);
    expect((await call(t.urls.storage, "POST", "/stock/8/receipts", { quantity: 1 }, adminHeaders)).status).toBe(201);
  });

  test("every path under /admin/ needs it, on every service, before anything else is looked at", async () => {
    for (const base of Object.values(t.urls)) {
      for (const path of ["/admin", "/admin/", "/admin/no-such-thing", "/%61dmin/no-such-thing"]) {
        const r = await call(base, "GET", path);
        expect(r.status).toBe(401);
        expect(r.body.error.code).toBe("unauthorized");
      }
      expect((await call(base, "POST", "/admin/no-such-thing", "{broken", { "content-type": "text/plain" })).status).toBe(401);
      const known = await call(base, "GET", "/admin/no-such-thing", undefined, adminHeaders);
      expect(known.status).toBe(404);
      expect(known.body.error.code).toBe("not_found");
    }
  });

  test("the OpenAPI documents declare the bearer scheme and a 401 on the protected routes", async () => {
    for (const [service, path] of [
      ["wallet", "/wallets/{user_id}/deposits"],
      ["storage", "/stock/{product_id}/receipts"],
    ] as const) {
      const doc = await getJson(t.urls[service], "/openapi.json");
      expect(doc.components.securitySchemes.adminToken).toMatchObject({ type: "http", scheme: "bearer" });
      expect(doc.paths[path].post.security).toEqual([{ adminToken: [] }]);
      expect(doc.paths[path].post.responses["401"].content["application/json"].schema.properties.error.properties.code.enum).toEqual([
        "unauthorized",
      ]);
      // Everything under /admin/ is declared protected (whoever added it); reads elsewhere stay open.
      for (const [p, item] of Object.entries<Record<string, { security?: unknown }>>(doc.paths)) {
        for (const [method, op] of Object.entries(item)) {
          if (p.startsWith("/admin/")) expect([p, method, op.security]).toEqual([p, method, [{ adminToken: [] }]]);
          else if (method === "get") expect([p, op.security]).toEqual([p, undefined]);
        }
      }
    }
  });

  test("without ADMIN_TOKEN a start makes up one token for all its modules and logs it once", () => {
    const lines: [string, Record<string, unknown> | undefined][] = [];
    const log = createLogger("silent");
    const spy = { ...log, info: (msg: string, fields?: Record<string, unknown>) => void lines.push([msg, fields]) };
    const settings = loadSettings({});
    const first = adminToken(settings, spy);
    expect(adminToken(settings, spy)).toBe(first);
    expect(first.length).toBeGreaterThanOrEqual(16);
    expect(lines).toEqual([["admin token (generated; set ADMIN_TOKEN to choose one)", { token: first }]]);
    expect(adminToken(loadSettings({}), spy)).not.toBe(first); // another start, another token
    expect(adminToken(loadSettings({ ADMIN_TOKEN: TEST_ADMIN_TOKEN }), spy)).toBe(TEST_ADMIN_TOKEN);
    expect(lines).toHaveLength(2);
    expect(() => loadSettings({ ADMIN_TOKEN: "too-short" })).toThrow("ADMIN_TOKEN");
    expect(() => loadSettings({ ADMIN_TOKEN: "has a space in the middle" })).toThrow("ADMIN_TOKEN");
  });
});

describe("while PostgreSQL is down", () => {
  test("503 unavailable carries Retry-After (as docs/api.md and OpenAPI say) and the security headers", async () => {
    const cluster = await startPostgresCluster({ name: "http-unavailable" });
    const shop = await startInProcess({ DATABASE_URL: await createDatabase(cluster.url) });
    try {
      expect((await call(shop.urls.wallet, "GET", "/wallets")).status).toBe(200);
      await cluster.down();
      const r = await eventually(async () => {
        const res = await fetch(`${shop.urls.wallet}/wallets`);
        const body = (await res.json()) as { error?: { code: string } };
        return res.status === 503 && { res, body };
      }, 30_000);
      expect(r.body.error?.code).toBe("unavailable");
      expect(Number(r.res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect([r.res.headers.get("x-content-type-options"), r.res.headers.get("x-frame-options")]).toEqual(["nosniff", "DENY"]);
      await cluster.up();
    } finally {
      await shop.stop();
      await cluster.stop();
    }
  }, 90_000);
});
