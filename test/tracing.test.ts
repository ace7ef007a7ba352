/**
 * Tracing's pieces in one process: the OTEL_* settings, the envelope's trace fields, the outbox
 * row keeping a message's trace for a relay that starts later (a restart), the consumer's span
 * continuing it, log lines joined to spans, and nothing at all while tracing is off.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { eq } from "drizzle-orm";
import { walletModule } from "../modules/wallet/index";
import * as tables from "../modules/wallet/schema";
import packageJson from "../package.json";
import type { BusRecord } from "../src/bus/bus";
import { ConfigError, loadSettings } from "../src/config";
import { createMessage, parseMessage } from "../src/contracts";
import type { Database } from "../src/db/database";
import { createLogger } from "../src/log";
import { createMessageConsumer } from "../src/messaging/message-consumer";
import { outboxWriter } from "../src/messaging/outbox";
import { startOutboxRelay } from "../src/messaging/outbox-relay";
import { startTracing } from "../src/tracing/setup";
import { activeTraceIds, inSpan, tracingOn } from "../src/tracing/spans";
import { eventually } from "./support/eventually";
import { openModuleDatabase } from "./support/module-db";
import { type OtlpReceiver, startOtlpReceiver } from "./support/otlp-receiver";
import { TOPICS } from "./support/shop-target";
import { stubBus } from "./support/stub-bus";

const silent = createLogger("silent");
const TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/** A logger whose JSON lines are kept. */
function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger("debug", { format: "json", destination: { write: (line: string) => void lines.push(JSON.parse(line)) } });
  return { log, lines };
}

describe("OTEL_* settings", () => {
  test("unset: tracing stays off (no provider, no span)", async () => {
    const s = loadSettings({});
    expect(startTracing(s, ["registry"], silent)).toBeNull();
    expect(tracingOn()).toBe(false);
    expect(await inSpan("x", {}, async (span) => span)).toBeUndefined();
  });

  test("OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none win over an endpoint", () => {
    expect(
      startTracing(loadSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318", OTEL_SDK_DISABLED: "true" }), ["wallet"], silent),
    ).toBeNull();
    expect(
      startTracing(
        loadSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318", OTEL_TRACES_EXPORTER: "none" }),
        ["wallet"],
        silent,
      ),
    ).toBeNull();
    expect(tracingOn()).toBe(false);
  });

  test.each([
    ["OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", 'only "http/json" is supported'],
    ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf", 'only "http/json" is supported'],
    ["OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318", "expected an http:// or https:// URL"],
    ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://collector/v1/traces", "expected an http:// or https:// URL"],
    ["OTEL_TRACES_SAMPLER", "sometimes", "parentbased_always_on"],
    ["OTEL_TRACES_SAMPLER_ARG", "1.5", "1"],
    ["OTEL_SDK_DISABLED", "yes", 'expected "true" or "false"'],
  ])("%s=%s is a named config error", (name, value, says) => {
    let err: unknown;
    try {
      loadSettings({ [name]: value });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).setting).toBe(name);
    expect((err as ConfigError).message).toContain(says);
  });

  test("the defaults: parent-based, always on, http/json", () => {
    const s = loadSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318", OTEL_TRACES_SAMPLER_ARG: "0.25" });
    expect(s.OTEL_TRACES_SAMPLER).toBe("parentbased_always_on");
    expect(s.OTEL_EXPORTER_OTLP_PROTOCOL).toBe("http/json");
    expect(s.OTEL_TRACES_SAMPLER_ARG).toBe(0.25);
  });
});

describe("the envelope's trace fields", () => {
  const withFields = (fields: Record<string, unknown>) =>
    JSON.stringify({ ...createMessage("StepSucceeded", { order_id: crypto.randomUUID(), service: "wallet" }), ...fields });

  test("a W3C traceparent and tracestate are kept", () => {
    const parsed = parseMessage(withFields({ traceparent: TRACEPARENT, tracestate: "vendor=abc" }));
    expect(parsed.ok && parsed.message.traceparent).toBe(TRACEPARENT);
    expect(parsed.ok && parsed.message.tracestate).toBe("vendor=abc");
  });

  test.each([["not-a-traceparent"], ["00-00000000000000000000000000000000-b7ad6b7169203331-01"], [TRACEPARENT.toUpperCase()], [42]])(
    "a malformed traceparent (%p) is dropped, the message still applies",
    (bad) => {
      const parsed = parseMessage(withFields({ traceparent: bad }));
      expect(parsed.ok).toBe(true);
      expect(parsed.ok && parsed.message.traceparent).toBeUndefined();
    },
  );
});

describe("tracing off", () => {
  let db: Database;
  beforeAll(async () => {
    db = await openModuleDatabase(walletModule);
  });
  afterAll(() => db?.close());

  test("the outbox writes no trace fields, and log lines have no trace_id", async () => {
    const orderId = crypto.randomUUID();
    const { enqueue } = outboxWriter(tables, TOPICS, () => {});
    const { log, lines } = capturingLogger();
    await inSpan("request", {}, async () => {
      log.info("inside");
      await db.transaction((tx) => enqueue(tx, createMessage("StepSucceeded", { order_id: orderId, service: "wallet" })));
    });
    const [row] = await db.read((q) => q.select().from(tables.outbox).where(eq(tables.outbox.key, orderId)));
    expect(Object.keys(row?.envelope as object)).not.toContain("traceparent");
    expect(lines[0]).not.toHaveProperty("trace_id");
    expect(activeTraceIds()).toBeUndefined();
  });
});

describe("tracing on", () => {
  let db: Database;
  let receiver: OtlpReceiver;
  let stop: () => Promise<void>;
  beforeAll(async () => {
    db = await openModuleDatabase(walletModule);
    receiver = startOtlpReceiver();
    const tracing = startTracing(loadSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url }), ["wallet"], silent);
    if (!tracing) throw new Error("tracing did not start");
    stop = tracing.stop;
  });
  afterAll(async () => {
    await stop?.();
    receiver?.stop();
    await db?.close();
  });

  test("a message written in a span keeps its trace in the outbox row; a relay started later sends it in that trace, and the consumer continues it", async () => {
    const orderId = crypto.randomUUID();
    const { enqueue } = outboxWriter(tables, TOPICS, () => {});
    const { log, lines } = capturingLogger();
    // The request: its span writes the message (no relay runs yet: the process "stops" here).
    const root = await inSpan("POST /orders", {}, async () => {
      log.info("placing");
      await db.transaction((tx) => enqueue(tx, createMessage("StepSucceeded", { order_id: orderId, service: "wallet" })));
      return activeTraceIds();
    });
    expect(root).toBeDefined();
    expect(lines[0]).toMatchObject({ trace_id: root?.trace_id, span_id: root?.span_id });
    const [row] = await db.read((q) => q.select().from(tables.outbox).where(eq(tables.outbox.key, orderId)));
    const stored = (row?.envelope as { traceparent?: string } | undefined)?.traceparent ?? "";
    expect(stored.split("-")[1]).toBe(root?.trace_id as string);

    // "After the restart": a new relay sends the row; the record carries the stored trace.
    const sent: BusRecord[] = [];
    const relay = await startOutboxRelay({ db, bus: stubBus(async (rs) => void sent.push(...rs)), tables, pollMs: 50, log: silent });
    try {
      await eventually(() => sent.some((r) => r.key === orderId));
    } finally {
      await relay.stop();
    }
    const record = sent.find((r) => r.key === orderId) as BusRecord;
    const parsed = parseMessage(record.value);
    expect(parsed.ok && parsed.message.traceparent).toBe(stored);

    // A consumer group applies it: its process span is the child of the span that wrote it.
    const consumer = createMessageConsumer({
      db,
      group: "trace-test",
      tables,
      outbox: outboxWriter(tables, TOPICS, () => {}),
      consumers: { handlers: { StepSucceeded: async () => log.info("handled") } },
      log,
    });
    expect(await consumer.handle([record])).toBe(1);

    await eventually(
      () => receiver.spans.some((s) => s.name === `process ${TOPICS.success}` && s.attributes["shop.order_id"] === orderId),
      30_000,
    );
    const trace = receiver.spans.filter((s) => s.traceId === root?.trace_id);
    const byName = (name: string) => trace.find((s) => s.name === name && s.attributes["shop.order_id"] === orderId);
    const create = byName(`create ${TOPICS.success}`);
    const send = byName(`send ${TOPICS.success}`);
    const process = byName(`process ${TOPICS.success}`);
    // Written inside the request's transaction: create's parent is that transaction, whose parent is the request.
    const writer = trace.find((s) => s.spanId === create?.parentSpanId);
    expect(writer?.name).toBe("transaction");
    expect(writer?.parentSpanId).toBe(root?.span_id as string);
    expect(stored.split("-")[2]).toBe(create?.spanId as string);
    expect(send?.parentSpanId).toBe(create?.spanId as string);
    expect(process?.parentSpanId).toBe(create?.spanId as string);
    expect(process?.attributes["messaging.consumer.group.name"]).toBe("trace-test");
    // The in-process bus's name on every messaging span (stubBus is a "memory" bus; the defaults of writer and consumer).
    for (const span of [create, send, process]) expect(span?.attributes["messaging.system"]).toBe("shop_memory_bus");
    // The resource names the service's version and the SDK that sent the spans.
    expect(process?.resource).toMatchObject({
      "service.name": "wallet",
      "service.namespace": "shop",
      "service.version": packageJson.version,
      "telemetry.sdk.name": "opentelemetry",
      "telemetry.sdk.language": expect.any(String),
      "telemetry.sdk.version": expect.any(String),
    });
    // The batch's transaction counts its statements (BEGIN, the inbox, COMMIT at least), never their text.
    const transaction = receiver.spans.find(
      (s) => s.name === "transaction" && s.traceId === root?.trace_id && s.parentSpanId !== root?.span_id,
    );
    expect(Number(transaction?.attributes["db.statements"])).toBeGreaterThanOrEqual(3);
    expect(JSON.stringify(transaction?.attributes)).not.toContain("insert");
    // The handler's line and the consumer's step line are in the process span.
    expect(lines.find((l) => l.msg === "handled")).toMatchObject({ trace_id: root?.trace_id, span_id: process?.spanId });
    expect(lines.find((l) => l.msg === "saga step")).toMatchObject({ trace_id: root?.trace_id, span_id: process?.spanId });
  });
});
