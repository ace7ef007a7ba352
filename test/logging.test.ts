/**
 * Logs you can follow: JSON lines off a terminal, one line per HTTP request with its request id
 * (echoed in X-Request-Id), and one line per saga step carrying the request id of the POST /orders
 * that started the order, in every module and, split, in every process.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Hono } from "hono";
import { z } from "zod";
import { createMessage, parseMessage } from "../src/contracts";
import { errorBody, errorHandler } from "../src/http/errors";
import { requestLog } from "../src/http/request-log";
import { createLogger, type LogFields, type Logger, logFormatFor } from "../src/log";
import { withRequestId } from "../src/request-context";
import { eventually } from "./support/eventually";
import { adminHeaders, call } from "./support/http";
import { type ShopProcess, startShopProcess } from "./support/process";
import { processEnv } from "./support/shop-target";
import { type SplitShop, startSplitShop } from "./support/split-shop";

/** A parsed JSON log line. */
type Line = Record<string, unknown> & { level: string; msg: string; component: string; time: string };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Every line of `logs` as JSON; a line that is not a JSON object fails the test. */
const parsed = (logs: string[]): Line[] =>
  logs
    .filter((l) => l.trim() !== "")
    .map((l) => {
      const line = JSON.parse(l) as Line;
      expect(typeof line.level).toBe("string");
      return line;
    });

const requestLines = (logs: string[], requestId: string) => parsed(logs).filter((l) => l.msg === "request" && l.request_id === requestId);

/** BODY_LIMIT_BYTES of the shops started here (a small one, for a 413). */
const BODY_LIMIT = 2048;

/** A fresh request id per call, so each test finds its own lines. */
const newRequestId = (label: string) => `${label}.${crypto.randomUUID().slice(0, 8)}`;

describe("the logger", () => {
  const capture = (level: Parameters<typeof createLogger>[0]) => {
    const writes: string[] = [];
    return { writes, log: createLogger(level, { format: "json", destination: { write: (s: string) => void writes.push(s) } }) };
  };

  test("off a terminal it writes one JSON object per line: level by name, time, component, msg, fields", () => {
    const { writes, log } = capture("debug");
    const inner = Object.assign(new Error("connection refused"), { code: "ECONNREFUSED" });
    log
      .child("wallet")
      .child("consumer")
      .info("line one\nwith a newline", { n: 12345678901234567890n, err: new Error("outer", { cause: inner }) });
    withRequestId("req-1", () => log.warn("line two"));
    log.debug("line three", { request_id: "explicit" });
    expect(writes).toHaveLength(3);
    for (const w of writes) {
      expect(w.endsWith("\n")).toBe(true);
      expect(w.slice(0, -1)).not.toContain("\n");
    }
    const [one, two, three] = writes.map((w) => JSON.parse(w) as Line);
    expect(one).toMatchObject({
      level: "info",
      component: "shop.wallet.consumer",
      msg: "line one\nwith a newline",
      n: "12345678901234567890",
    });
    expect(one?.err).toEqual({
      name: "Error",
      message: "outer",
      cause: { name: "Error", message: "connection refused", code: "ECONNREFUSED" },
    });
    expect(Date.parse(String(one?.time))).toBeGreaterThan(0);
    expect(one).not.toHaveProperty("pid");
    expect(two).toMatchObject({ level: "warn", msg: "line two", request_id: "req-1" });
    expect(three).toMatchObject({ level: "debug", request_id: "explicit" });
  });

  test("LOG_LEVEL filters: below the level and silent write nothing", () => {
    const warn = capture("warn");
    warn.log.debug("no");
    warn.log.info("no");
    warn.log.error("yes");
    expect(warn.writes.map((w) => (JSON.parse(w) as Line).msg)).toEqual(["yes"]);
    const silent = capture("silent");
    silent.log.error("no");
    expect(silent.writes).toEqual([]);
  });

  test("the format: pretty on a terminal, JSON elsewhere, unless LOG_FORMAT says", () => {
    expect(logFormatFor(undefined, false)).toBe("json");
    expect(logFormatFor(undefined, true)).toBe("pretty");
    expect(logFormatFor("json", true)).toBe("json");
    expect(logFormatFor("pretty", false)).toBe("pretty");
  });
});

describe("request_id in the envelope", () => {
  const created = () => createMessage("StepSucceeded", { order_id: crypto.randomUUID(), service: "wallet" });

  test("optional: a record without one (written before it existed) is read as before", () => {
    const m = created();
    expect(parseMessage(JSON.stringify(m))).toEqual({ ok: true, message: m });
  });

  test("kept when sane; a malformed one is dropped, and the message still applies", () => {
    const m = created();
    expect(parseMessage(JSON.stringify({ ...m, request_id: "order-42" }))).toEqual({ ok: true, message: { ...m, request_id: "order-42" } });
    for (const bad of ["two words", "x".repeat(129), 42, null]) {
      const read = parseMessage(JSON.stringify({ ...m, request_id: bad }));
      expect(read.ok && read.message.request_id).toBeUndefined();
    }
  });
});

describe("request ids and request lines (the middleware)", () => {
  const lines: [string, string, LogFields][] = [];
  const spy =
    (level: string): Logger["info"] =>
    (msg, fields) =>
      void lines.push([level, msg, fields ?? {}]);
  const log: Logger = { debug: spy("debug"), info: spy("info"), warn: spy("warn"), error: spy("error"), child: () => log };
  // The shell's order (createServiceApp): error hook, not-found answer, then this middleware outermost.
  const app = new Hono();
  app.onError(errorHandler(log));
  app.notFound((c) => c.json(errorBody("not_found", "no route"), 404));
  app.use(requestLog(log));
  app.get("/orders/:id", (c) => c.json({ id: c.req.param("id") }));
  app.get("/health", (c) => c.json({ status: "ok" }));
  app.get("/boom", () => {
    throw new Error("kaput");
  });
  const lineOf = (requestId: string) => lines.filter(([, msg, f]) => msg === "request" && f.request_id === requestId);

  test("every answer echoes the request id, 500 included, and is logged once: route pattern, status, duration, level", async () => {
    const cases: [string, number, string | null, string][] = [
      ["/orders/abc", 200, "/orders/{id}", "info"],
      ["/boom", 500, "/boom", "error"],
      ["/nowhere", 404, null, "info"],
      ["/health", 200, "/health", "debug"],
    ];
    for (const [path, status, route, level] of cases) {
      const id = newRequestId("mw");
      const res = await app.request(path, { headers: { "X-Request-Id": id } });
      expect([path, res.status, res.headers.get("x-request-id")]).toEqual([path, status, id]);
      const logged = lineOf(id);
      expect(logged).toHaveLength(1);
      expect(logged[0]?.[0]).toBe(level);
      expect(logged[0]?.[2]).toMatchObject({ method: "GET", route, status });
      expect(typeof logged[0]?.[2].duration_ms).toBe("number");
    }
  });

  test("a request id that is not 1..128 of [A-Za-z0-9._:-] is replaced, never echoed", async () => {
    for (const bad of ["", "has space", "x".repeat(129), "semi;colon", "ünïcode", "<script>"]) {
      const res = await app.request("/health", { headers: { "X-Request-Id": bad } });
      const echoed = res.headers.get("x-request-id") ?? "";
      expect(echoed).toMatch(UUID);
      expect(lineOf(echoed)).toHaveLength(1);
    }
    const fine = `a.B_c:d-${"9".repeat(120)}`;
    expect((await app.request("/health", { headers: { "X-Request-Id": fine } })).headers.get("x-request-id")).toBe(fine);
    // None sent: one made up.
    expect((await app.request("/health")).headers.get("x-request-id")).toMatch(UUID);
  });
});

/** The lines an order's saga left, by module: saga steps and registry's decision, all under the order's id. */
function sagaLines(lines: Line[], orderId: string): Line[] {
  return lines.filter((l) => l.order_id === orderId && (l.msg === "saga step" || l.msg.startsWith("order ")));
}

/** The lines in short, for a failure message. */
const summary = (lines: Line[]) => JSON.stringify(lines.map((l) => [l.msg, l.group, l.type, l.outcome, l.request_id]));

const SagaStep = z.object({
  msg: z.literal("saga step"),
  level: z.literal("info"),
  outcome: z.literal("applied"),
  group: z.enum(["registry", "wallet", "storage"]),
  type: z.string(),
  step: z.string(),
  order_id: z.uuid(),
  message_id: z.uuid(),
  request_id: z.string(),
  duration_ms: z.number().nonnegative(),
});

/** A shop under test: where to send requests and every log line so far, from any of its processes. */
interface Logged {
  urls: Record<"registry" | "wallet" | "storage", string>;
  logs(): string[];
  /** Split: each service process's own lines. */
  processLogs?(): Record<"registry" | "wallet" | "storage", string[]>;
}

/** Places an order with a chosen X-Request-Id after giving its user `deposit` cents and its product stock. */
async function placeOrder(shop: Logged, opts: { deposit: number; product: number }): Promise<{ id: string; requestId: string }> {
  const user = 100_000 + Math.floor(Math.random() * 800_000);
  if (opts.deposit > 0) {
    expect((await call(shop.urls.wallet, "POST", `/wallets/${user}/deposits`, { amount_cents: opts.deposit }, adminHeaders)).status).toBe(
      201,
    );
  }
  expect((await call(shop.urls.storage, "POST", `/stock/${opts.product}/receipts`, { quantity: 5 }, adminHeaders)).status).toBe(201);
  const requestId = newRequestId("order");
  const r = await call<{ id: string }>(
    shop.urls.registry,
    "POST",
    "/orders",
    { user_id: user, items: [{ product_id: opts.product, quantity: 1 }] },
    {
      "X-Request-Id": requestId,
    },
  );
  expect(r.status).toBe(201);
  expect(r.headers.get("x-request-id")).toBe(requestId);
  return { id: r.body.id, requestId };
}

/** The saga lines of a completed and a rejected order: every step in its module, each under the order's request id. */
function sagaSuite(start: () => Promise<Logged & { stop(): Promise<void> }>) {
  let shop: Logged & { stop(): Promise<void> };
  beforeAll(async () => {
    shop = await start();
  }, 180_000);
  afterAll(async () => {
    await shop?.stop();
  }, 60_000);

  test("a completed order: its POST line and every step in registry, wallet and storage share the request id", async () => {
    const order = await placeOrder(shop, { deposit: 10_000, product: 61 });
    // The line reaches this test through a pipe, shortly after the answer.
    const post = await eventually(() => {
      const found = requestLines(shop.logs(), order.requestId);
      return found.length > 0 && found;
    });
    expect(post).toHaveLength(1);
    expect(post[0]).toMatchObject({ level: "info", method: "POST", route: "/orders", status: 201, component: "shop.registry.http" });
    const steps = await eventually(() => {
      const found = sagaLines(parsed(shop.logs()), order.id);
      // OrderCreated in wallet and storage, their StepSucceeded in registry, and registry's decision.
      if (found.length < 5 || !found.some((l) => l.msg === "order completed")) throw new Error(`so far: ${summary(found)}`);
      return found;
    }, 60_000);
    for (const l of steps) expect([l.msg, l.request_id]).toEqual([l.msg, order.requestId]);
    const applied = steps.filter((l) => l.msg === "saga step" && l.outcome === "applied").map((l) => SagaStep.parse(l));
    expect(applied.map((l) => `${l.group} ${l.type}`).sort()).toEqual([
      "registry StepSucceeded",
      "registry StepSucceeded",
      "storage OrderCreated",
      "wallet OrderCreated",
    ]);
    expect(steps.find((l) => l.msg === "order completed")).toMatchObject({
      level: "info",
      order_id: order.id,
      request_id: order.requestId,
    });
    // Split: each process logged its own module's steps of the order, under the same id.
    for (const [name, logs] of Object.entries(shop.processLogs?.() ?? {})) {
      const own = sagaLines(parsed(logs), order.id).filter((l) => l.msg === "saga step");
      expect([name, own.length > 0, own.every((l) => l.group === name && l.request_id === order.requestId)]).toEqual([name, true, true]);
    }
  }, 90_000);

  test("a rejected order: the rejection, registry's decision and the compensations still carry the request id", async () => {
    const order = await placeOrder(shop, { deposit: 0, product: 62 });
    const steps = await eventually(() => {
      const found = sagaLines(parsed(shop.logs()), order.id);
      // wallet rejects, storage reserves; registry decides and tells both; storage releases and says so.
      const done =
        found.some((l) => l.group === "registry" && l.type === "OrderCompensated" && l.msg === "saga step") &&
        found.filter((l) => l.type === "OrderRejected" && l.group !== "registry").length >= 2 &&
        found.some((l) => l.msg === "order rejected");
      if (!done) throw new Error(`so far: ${summary(found)}`);
      return found;
    }, 60_000);
    for (const l of steps) expect([l.msg, l.type, l.group, l.request_id]).toEqual([l.msg, l.type, l.group, order.requestId]);
    expect(steps.find((l) => l.msg === "order rejected")).toMatchObject({ reason: "unknown_wallet" });
  }, 90_000);

  test("a malformed POST, a 404, 405, 413 and 415 are logged with their request ids; a bad id is replaced", async () => {
    const bad = newRequestId("bad");
    const r = await call(shop.urls.registry, "POST", "/orders", "{not json", { "X-Request-Id": bad });
    expect([r.status, r.headers.get("x-request-id")]).toEqual([400, bad]);
    const missing = newRequestId("missing");
    const m = await call(shop.urls.wallet, "GET", "/nowhere/at/all", undefined, { "X-Request-Id": missing });
    expect([m.status, m.headers.get("x-request-id")]).toEqual([404, missing]);
    // Refused by the shell before any route runs: each still echoes its id and logs its line.
    const refusals: [string, string, unknown, Record<string, string>, number, string | null][] = [
      ["DELETE", "/orders", undefined, {}, 405, null],
      ["POST", "/orders", "x".repeat(BODY_LIMIT * 2), {}, 413, "/orders"],
      ["POST", "/orders", "{}", { "content-type": "application/json; charset=latin1" }, 415, "/orders"],
    ];
    for (const [method, path, body, headers, status, route] of refusals) {
      const id = newRequestId(String(status));
      const res = await call(shop.urls.registry, method, path, body, { ...headers, "X-Request-Id": id });
      expect([status, res.status, res.headers.get("x-request-id")]).toEqual([status, status, id]);
      await eventually(() => requestLines(shop.logs(), id).length === 1);
      expect(requestLines(shop.logs(), id)[0]).toMatchObject({ method, route, status });
    }
    const garbage = await call(shop.urls.storage, "GET", "/stock", undefined, { "X-Request-Id": "two words\t" });
    const replaced = garbage.headers.get("x-request-id") ?? "";
    expect(replaced).toMatch(UUID);
    await eventually(() => requestLines(shop.logs(), replaced).length === 1);
    expect(requestLines(shop.logs(), bad)).toEqual([
      expect.objectContaining({ route: "/orders", status: 400, method: "POST", level: "info" }),
    ]);
    expect(requestLines(shop.logs(), missing)).toEqual([expect.objectContaining({ route: null, path: "/nowhere/at/all", status: 404 })]);
    expect(requestLines(shop.logs(), replaced)).toEqual([
      expect.objectContaining({ route: "/stock", status: 200, component: "shop.storage.http" }),
    ]);
    expect(shop.logs().join("\n")).not.toContain("two words");
  }, 30_000);
}

describe("one process (bun src/app/main.ts, memory bus, PGlite), stderr not a terminal", () => {
  sagaSuite(async () => {
    const p: ShopProcess = await startShopProcess(
      [],
      processEnv({ DATA_DIR: ":memory:", LOG_LEVEL: "debug", BODY_LIMIT_BYTES: String(BODY_LIMIT) }),
      3,
      90_000,
    );
    return {
      urls: { registry: p.urls.registry ?? "", wallet: p.urls.wallet ?? "", storage: p.urls.storage ?? "" },
      logs: () => p.logs,
      stop: async () => void (await p.stop()),
    };
  });
});

describe("split: three processes over Kafka (mock broker) and PostgreSQL", () => {
  sagaSuite(async () => {
    const split: SplitShop = await startSplitShop({ LOG_LEVEL: "debug", BODY_LIMIT_BYTES: String(BODY_LIMIT) });
    return {
      urls: split.urls as Logged["urls"],
      logs: () => Object.values(split.processes).flatMap((p) => p.logs),
      processLogs: () => ({
        registry: split.processes.registry.logs,
        wallet: split.processes.wallet.logs,
        storage: split.processes.storage.logs,
      }),
      stop: () => split.stop(),
    };
  });
});
