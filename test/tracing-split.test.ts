/**
 * Tracing across the split deployment (three processes over the Kafka mock, PostgreSQL), read
 * from an in-test OTLP/HTTP receiver: each order is one trace across registry, wallet and
 * storage, its decision hangs by parent links from `POST /orders`, a rejected order's
 * compensations are in its trace, the request and saga-step log lines carry its trace id; and
 * with OTEL_EXPORTER_OTLP_ENDPOINT unset, the same services send nothing and log no trace id.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { NOTHING_TO_UNDO_SPAN } from "../src/tracing/spans";
import { eventually } from "./support/eventually";
import { adminHeaders, call, getJson } from "./support/http";
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver, tracesOfOrder } from "./support/otlp-receiver";
import { restartService, type SplitService, type SplitShop, startSplitShop } from "./support/split-shop";

/** Generous bounds: CI is a busy two-core machine. */
const FINAL_TIMEOUT_MS = 90_000;
/** Long enough that a busy machine never times an order out (a timeout would be another trace shape). */
const SAGA_DEADLINE_SECONDS = "120";
const SERVICES: readonly SplitService[] = ["registry", "wallet", "storage"];
/** OTLP's SpanKind numbers. */
const KIND = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 } as const;
/** Every fixture product costs 10.00. */
const PRICE_CENTS = 1000;

type Timeline = { service: string; step: string; detail: string | null }[];
type OrderBody = { id: string; status: string; reason: string | null; compensation: string | null; timeline: Timeline };
type LogLine = Record<string, unknown> & { msg?: string };

/** An order placed through `POST /orders`, with the request id its answer echoed. */
interface Placed {
  id: string;
  requestId: string;
  final: OrderBody;
}

let shop: SplitShop;
let receiver: OtlpReceiver;

beforeAll(async () => {
  receiver = startOtlpReceiver();
  shop = await startSplitShop({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, REGISTRY_SAGA_DEADLINE_SECONDS: SAGA_DEADLINE_SECONDS });
}, 180_000);

afterAll(async () => {
  await shop?.stop();
  receiver?.stop();
}, 60_000);

// ---------------------------------------------------------------------------------------------
// Helpers

const deposit = async (userId: number, cents: number) => {
  expect((await call(shop.urls.wallet, "POST", `/wallets/${userId}/deposits`, { amount_cents: cents }, adminHeaders)).status).toBe(201);
};
const receive = async (productId: number, quantity: number) => {
  expect((await call(shop.urls.storage, "POST", `/stock/${productId}/receipts`, { quantity }, adminHeaders)).status).toBe(201);
};

/** Places an order (no `traceparent`: the request starts the trace) and waits until it is final. */
async function placeOrder(userId: number, productId: number, quantity: number): Promise<Placed> {
  const r = await call<{ id: string }>(shop.urls.registry, "POST", "/orders", {
    user_id: userId,
    items: [{ product_id: productId, quantity }],
  });
  expect(r.status).toBe(201);
  const requestId = r.headers.get("x-request-id") ?? "";
  expect(requestId).not.toBe("");
  const final = await eventually(
    async () => {
      // Each GET is a trace of its own (it names the order too): sagaTraces leaves those out.
      const o = await getJson<OrderBody>(shop.urls.registry, `/orders/${r.body.id}`);
      if (o.status === "pending" || (o.status === "rejected" && o.compensation !== "done")) throw new Error(`order ${o.id}: ${o.status}`);
      return o;
    },
    FINAL_TIMEOUT_MS,
    100,
  );
  return { id: r.body.id, requestId, final };
}

const label = (s: ReceivedSpan) => `${s.service}:${s.name}`;

/** The spans from `span` up to its root, following parentSpanId within `trace`. */
function chainUp(trace: ReceivedSpan[], span: ReceivedSpan): ReceivedSpan[] {
  const byId = new Map(trace.map((s) => [s.spanId, s]));
  const chain = [span];
  for (let s = span; s.parentSpanId !== null; ) {
    const parent = byId.get(s.parentSpanId);
    if (!parent) throw new Error(`${label(s)} has a parent ${s.parentSpanId} not (yet) received`);
    chain.push(parent);
    s = parent;
  }
  return chain;
}

/** Spans of `trace` whose parent is not in it (spans are batched per process: some may be on their way). */
const orphansOf = (trace: ReceivedSpan[]) => {
  const ids = new Set(trace.map((s) => s.spanId));
  return trace.filter((s) => s.parentSpanId !== null && !ids.has(s.parentSpanId));
};

/** The consumer groups that handle the messages of each topic (one per module, named after it). */
const READERS: Record<string, readonly SplitService[]> = {
  new_orders: ["wallet", "storage"],
  rejected_orders: ["registry", "wallet", "storage"],
  success_topics: ["registry"],
};

/** What the trace still lacks of each message written in it: its `send` by the relay, a `process` by each group that reads its topic. */
function unfinishedMessages(trace: ReceivedSpan[]): string[] {
  const children = (parent: ReceivedSpan, name: string) => trace.filter((s) => s.parentSpanId === parent.spanId && s.name === name);
  return trace
    .filter((s) => s.name.startsWith("create "))
    .flatMap((create) => {
      const topic = create.name.slice("create ".length);
      const lacking: string[] = (READERS[topic] ?? []).filter(
        (group) => !children(create, `process ${topic}`).some((p) => p.service === group),
      );
      if (children(create, `send ${topic}`).length === 0) lacking.push("the relay");
      return lacking.map((who) => `${label(create)} (${create.attributes["shop.message_type"]}) not yet handled by ${who}`);
    });
}

/**
 * Waits until the order's trace holds every span in `expected` (`service:name`, as many times as
 * listed), every message written in it was sent and handled by each reader, and no span of it
 * lacks its parent; returns the order's traces by id.
 */
function completeTrace(orderId: string, expected: string[]) {
  return eventually(
    () => {
      const traces = sagaTraces(receiver.spans, orderId);
      const all = [...traces.values()].flat();
      const have = all.map(label);
      const missing = expected.filter(
        (e, i) => have.filter((h) => h === e).length < expected.slice(0, i + 1).filter((x) => x === e).length,
      );
      if (missing.length > 0) throw new Error(`order ${orderId}: no span ${missing.join(", ")} yet; have ${have.join(", ")}`);
      const orphans = orphansOf(all);
      if (orphans.length > 0) throw new Error(`order ${orderId}: parents missing for ${orphans.map(label).join(", ")}`);
      const unfinished = unfinishedMessages(all);
      if (unfinished.length > 0) throw new Error(`order ${orderId}: ${unfinished.join("; ")}`);
      return traces;
    },
    FINAL_TIMEOUT_MS,
    200,
  );
}

/** The traces of an order's saga: those naming it, but for the reads of it (a GET is a trace of its own). */
function sagaTraces(spans: ReceivedSpan[], orderId: string): Map<string, ReceivedSpan[]> {
  const traces = tracesOfOrder(spans, orderId);
  for (const [id, trace] of traces) if (trace.every((s) => s.name.startsWith("GET "))) traces.delete(id);
  return traces;
}

/** The one trace of an order, checked to be one. */
function onlyTrace(traces: Map<string, ReceivedSpan[]>): [string, ReceivedSpan[]] {
  expect([...traces.keys()]).toHaveLength(1);
  return [...traces.entries()][0] as [string, ReceivedSpan[]];
}

/** The one span named `name` of `service` in `trace`. */
function one(trace: ReceivedSpan[], service: string, name: string): ReceivedSpan {
  const found = trace.filter((s) => s.service === service && s.name === name);
  expect(found.map(label)).toEqual([`${service}:${name}`]);
  return found[0] as ReceivedSpan;
}

/** The request's SERVER span: the root of the trace, with the HTTP attributes and the order's id. */
function expectRequestRoot(trace: ReceivedSpan[], orderId: string): ReceivedSpan {
  const post = one(trace, "registry", "POST /orders");
  expect(post.kind).toBe(KIND.server);
  expect(post.parentSpanId).toBeNull();
  expect(post.attributes).toMatchObject({
    "http.request.method": "POST",
    "http.route": "/orders",
    "http.response.status_code": 201,
    "shop.order_id": orderId,
  });
  // The only root: everything else hangs from the request.
  expect(trace.filter((s) => s.parentSpanId === null).map(label)).toEqual(["registry:POST /orders"]);
  return post;
}

/** Every `process <topic>` span of the trace is a CONSUMER child of a `create <topic>` span, tagged with its group and order. */
function expectProcessSpans(trace: ReceivedSpan[], orderId: string) {
  const byId = new Map(trace.map((s) => [s.spanId, s]));
  const processes = trace.filter((s) => s.name.startsWith("process "));
  expect(processes.length).toBeGreaterThan(0);
  for (const p of processes) {
    const topic = p.name.slice("process ".length);
    expect(p.kind).toBe(KIND.consumer);
    expect(byId.get(p.parentSpanId ?? "")?.name).toBe(`create ${topic}`);
    expect(p.attributes).toMatchObject({ "messaging.consumer.group.name": p.service, "shop.order_id": orderId });
    expect(typeof p.attributes["shop.message_type"]).toBe("string");
  }
}

/** Each `send <topic>` span is a PRODUCER child of its record's `create <topic>`, linked to the relay's batch span (a root of its own). */
function expectSendSpans(trace: ReceivedSpan[]) {
  const byId = new Map(trace.map((s) => [s.spanId, s]));
  const sends = trace.filter((s) => s.name.startsWith("send "));
  expect(sends.length).toBeGreaterThan(0);
  for (const send of sends) {
    expect(send.kind).toBe(KIND.producer);
    const create = byId.get(send.parentSpanId ?? "");
    expect(create?.name).toBe(`create ${send.name.slice("send ".length)}`);
    expect(create?.service).toBe(send.service);
    expect(send.links).toHaveLength(1);
    const batch = receiver.spans.find((s) => s.spanId === send.links[0]?.spanId);
    expect(batch?.parentSpanId ?? null).toBeNull();
    expect(batch?.name.startsWith("send ")).toBe(true);
    expect(batch?.links.some((l) => l.spanId === create?.spanId)).toBe(true);
  }
}

/** Every line of `logs` that is JSON. */
const parsed = (logs: string[]): LogLine[] =>
  logs.flatMap((l) => {
    try {
      return [JSON.parse(l) as LogLine];
    } catch {
      return [];
    }
  });
const logsOf = (name: SplitService) => parsed(shop.processes[name].logs);
const sagaSteps = (name: SplitService, orderId: string) => logsOf(name).filter((l) => l.msg === "saga step" && l.order_id === orderId);
const requestLine = (requestId: string) => logsOf("registry").find((l) => l.msg === "request" && l.request_id === requestId);

/** The order's request line and its saga-step lines (wallet's and storage's, registry's too) carry its trace's ids. */
async function expectLogsInTrace(order: Placed, traceId: string, trace: ReceivedSpan[]) {
  const line = await eventually(() => requestLine(order.requestId) ?? false, FINAL_TIMEOUT_MS, 100);
  expect(line).toMatchObject({
    method: "POST",
    route: "/orders",
    status: 201,
    trace_id: traceId,
    span_id: one(trace, "registry", "POST /orders").spanId,
  });
  const processIds = new Set(trace.filter((s) => s.name.startsWith("process ")).map((s) => `${s.service}:${s.spanId}`));
  for (const name of SERVICES) {
    const steps = await eventually(
      () => {
        const found = sagaSteps(name, order.id);
        return found.length > 0 && found;
      },
      FINAL_TIMEOUT_MS,
      100,
    );
    for (const step of steps) {
      expect(step).toMatchObject({ outcome: "applied", trace_id: traceId });
      // The span of the line is the message's process span, in this very trace.
      expect(processIds.has(`${name}:${step.span_id}`)).toBe(true);
    }
  }
}

// ---------------------------------------------------------------------------------------------

describe("tracing on: each order is one trace across the three processes", () => {
  let completed: Placed;
  let rejected: Placed;

  beforeAll(async () => {
    // A user with money and stock for the completed order; a user with too little for the rejected one.
    await deposit(1, 5 * PRICE_CENTS);
    await deposit(2, PRICE_CENTS / 2);
    await receive(1, 10);
    await receive(2, 10);
    completed = await placeOrder(1, 1, 2);
    rejected = await placeOrder(2, 2, 1);
  }, 240_000);

  test("the completed order: one trace, spans of registry, wallet and storage, `order completed` hanging from POST /orders", async () => {
    expect(completed.final.status).toBe("completed");
    const traces = await completeTrace(completed.id, [
      "registry:POST /orders",
      "registry:create new_orders",
      "registry:send new_orders",
      "wallet:process new_orders",
      "wallet:create success_topics",
      "wallet:send success_topics",
      "storage:process new_orders",
      "storage:create success_topics",
      "storage:send success_topics",
      "registry:process success_topics",
      "registry:process success_topics",
      "registry:order completed",
    ]);
    const [traceId, trace] = onlyTrace(traces);
    console.log(`completed order ${completed.id}, trace ${traceId}:\n  ${trace.map(label).join("\n  ")}`);
    expect(new Set(trace.map((s) => s.service))).toEqual(new Set(SERVICES));
    // Every span that names the order is in its trace (but its reads, traces of their own).
    expect(
      receiver.spans
        .filter((s) => s.attributes["shop.order_id"] === completed.id && !s.name.startsWith("GET "))
        .every((s) => s.traceId === traceId),
    ).toBe(true);
    expect(orphansOf(trace)).toEqual([]);

    const post = expectRequestRoot(trace, completed.id);
    const decision = one(trace, "registry", "order completed");
    expect(decision.attributes).toMatchObject({ "shop.order_id": completed.id, "shop.order.status": "completed" });
    expect(decision.attributes).not.toHaveProperty("shop.order.reason");
    // The decision's parents: the step that completed it, the message that brought the step, the
    // participant's handling of OrderCreated, registry's OrderCreated, the request.
    const chain = chainUp(trace, decision);
    expect(chain.at(-1)).toBe(post);
    const participant = chain[2]?.service ?? "";
    expect(["wallet", "storage"]).toContain(participant);
    expect(chain.map(label)).toEqual([
      "registry:order completed",
      "registry:process success_topics",
      `${participant}:create success_topics`,
      `${participant}:process new_orders`,
      "registry:create new_orders",
      "registry:POST /orders",
    ]);
    expectProcessSpans(trace, completed.id);
    expectSendSpans(trace);
    // Each transaction span reports how many statements it ran.
    for (const tx of trace.filter((s) => s.name === "transaction")) expect(tx.attributes["db.statements"]).toBeGreaterThanOrEqual(3);
  }, 180_000);

  test("the rejected order (insufficient funds): one trace, `order rejected` with its reason, compensations in it hanging from POST /orders", async () => {
    expect(rejected.final).toMatchObject({ status: "rejected", reason: "insufficient_funds", compensation: "done" });
    // Storage reserved the item and released it, or heard of the rejection first and had nothing to undo.
    const undone = rejected.final.timeline.find((e) => e.service === "storage" && (e.step === "released" || e.step === "nothing_to_undo"));
    expect(undone).toBeDefined();
    // A compensation that undid nothing is named so, not "release items" or "refund order".
    const storageUndo = undone?.step === "released" ? "release items" : NOTHING_TO_UNDO_SPAN;
    const traces = await completeTrace(rejected.id, [
      "registry:POST /orders",
      "registry:create new_orders",
      "wallet:process new_orders",
      "wallet:create rejected_orders",
      "registry:process rejected_orders",
      "registry:order rejected",
      "registry:create rejected_orders",
      "registry:send rejected_orders",
      `wallet:${NOTHING_TO_UNDO_SPAN}`,
      `storage:${storageUndo}`,
      "storage:create success_topics", // its OrderCompensated
      "registry:process success_topics", // registry hearing of it
    ]);
    const [traceId, trace] = onlyTrace(traces);
    console.log(`rejected order ${rejected.id}, trace ${traceId}:\n  ${trace.map(label).join("\n  ")}`);
    expect(new Set(trace.map((s) => s.service))).toEqual(new Set(SERVICES));
    expect(
      receiver.spans
        .filter((s) => s.attributes["shop.order_id"] === rejected.id && !s.name.startsWith("GET "))
        .every((s) => s.traceId === traceId),
    ).toBe(true);
    expect(orphansOf(trace)).toEqual([]);
    // Every messaging span (create, send, consume, process) names the system it ran on.
    const messaging = trace.filter((s) => s.attributes["messaging.operation.type"] !== undefined);
    expect(new Set(messaging.map((s) => s.attributes["messaging.operation.name"]))).toEqual(
      new Set(["create", "send", "consume", "process"]),
    );
    expect(messaging.filter((s) => s.attributes["messaging.system"] !== "kafka").map(label)).toEqual([]);

    const post = expectRequestRoot(trace, rejected.id);
    const decision = one(trace, "registry", "order rejected");
    expect(decision.attributes).toMatchObject({
      "shop.order_id": rejected.id,
      "shop.order.status": "rejected",
      "shop.order.reason": "insufficient_funds",
    });
    expect(chainUp(trace, decision).map(label)).toEqual([
      "registry:order rejected",
      "registry:process rejected_orders",
      "wallet:create rejected_orders",
      "wallet:process new_orders",
      "registry:create new_orders",
      "registry:POST /orders",
    ]);

    // Storage's compensation says what it did, as the order's timeline does.
    const release = one(trace, "storage", storageUndo);
    expect(release.attributes).toMatchObject({
      "shop.order_id": rejected.id,
      "shop.compensation": true,
      "shop.compensation.action": undone?.step,
    });
    // Wallet rejected the order itself: it hears registry's rejection in a compensation span that
    // has nothing to undo (it never debited), and is named so.
    const refund = one(trace, "wallet", NOTHING_TO_UNDO_SPAN);
    expect(refund.attributes).toMatchObject({ "shop.order_id": rejected.id, "shop.compensation": true });
    expect(refund.attributes["shop.compensation.action"]).toBe("none_rejected_here");
    for (const compensation of [release, refund]) {
      const chain = chainUp(trace, compensation);
      expect(chain.at(-1)).toBe(post);
      // Each answers registry's OrderRejected, written from registry's decision.
      expect(chain.slice(1, 5).map(label)).toEqual([
        `${compensation.service}:process rejected_orders`,
        "registry:create rejected_orders",
        "registry:order rejected",
        "registry:process rejected_orders",
      ]);
      expect(chain[3]).toBe(decision);
      expect(chain[4]).toBe(trace.find((s) => s.spanId === decision.parentSpanId));
    }
    // What storage undid is announced from its compensation span (OrderCompensated, for registry).
    const announced = trace.filter((s) => s.parentSpanId === release.spanId && s.name === "create success_topics");
    expect(announced.map((s) => s.attributes["shop.message_type"])).toEqual(["OrderCompensated"]);
    expectProcessSpans(trace, rejected.id);
    expectSendSpans(trace);
  }, 180_000);

  test("log lines: each order's request line and its saga-step lines carry its trace id", async () => {
    for (const order of [completed, rejected]) {
      const [traceId, trace] = onlyTrace(sagaTraces(receiver.spans, order.id));
      await expectLogsInTrace(order, traceId, trace);
    }
    // The two orders are two traces.
    expect(onlyTrace(sagaTraces(receiver.spans, completed.id))[0]).not.toBe(onlyTrace(sagaTraces(receiver.spans, rejected.id))[0]);
    for (const name of SERVICES) expect(logsOf(name).some((l) => l.msg === "tracing on")).toBe(true);
  }, 180_000);
});

describe("tracing off: OTEL_EXPORTER_OTLP_ENDPOINT unset", () => {
  test("the services, restarted without it, send no span (not even on SIGTERM) and log no trace id", async () => {
    delete shop.env.OTEL_EXPORTER_OTLP_ENDPOINT;
    // Each traced process flushes its last spans as it stops; what arrives after is the untraced ones'.
    await Promise.all(SERVICES.map((name) => restartService(shop, name)));
    const requests = receiver.requests;
    const spans = receiver.spans.length;

    await deposit(3, 5 * PRICE_CENTS);
    await receive(3, 10);
    const order = await placeOrder(3, 3, 1);
    expect(order.final.status).toBe("completed");
    // The lines the checks below read exist: the request's, and a saga step in each process.
    await eventually(
      () => requestLine(order.requestId) !== undefined && SERVICES.every((n) => sagaSteps(n, order.id).length > 0),
      FINAL_TIMEOUT_MS,
      100,
    );
    for (const name of SERVICES) expect(await shop.processes[name].stop("SIGTERM")).toBe(0);

    expect(receiver.requests).toBe(requests);
    expect(receiver.spans.length).toBe(spans);
    expect(receiver.spans.filter((s) => s.attributes["shop.order_id"] === order.id)).toEqual([]);
    for (const name of SERVICES) {
      const lines = logsOf(name);
      expect(lines.some((l) => l.msg === "tracing on")).toBe(false);
      expect(lines.filter((l) => "trace_id" in l || "span_id" in l)).toEqual([]);
    }
  }, 240_000);
});
