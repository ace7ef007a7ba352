/**
 * Tracing to a collector that is down costs a bounded queue (issue 24): with the endpoint on a
 * closed port, or on a listener that accepts and never answers, spans made as fast as the process
 * can are dropped and counted, at most 8192 wait, one export is in flight at a time (one
 * connection at a time to the silent collector), and a warning says so at most once a minute.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createServer, type Server, type Socket } from "node:net";
import { Registry } from "prom-client";
import { loadSettings } from "../src/config";
import { createLogger } from "../src/log";
import { tracingMetrics } from "../src/tracing/metrics";
import { startTracing } from "../src/tracing/setup";
import { inSpan } from "../src/tracing/spans";
import { eventually } from "./support/eventually";

const MAX_QUEUED = 8192;
const BATCH = 512;

// Each attempt gives up after 1 s (read by the exporter from the environment), so that failures come quickly.
const TIMEOUT_VARIABLE = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT";
const timeoutBefore = process.env[TIMEOUT_VARIABLE];
beforeAll(() => {
  process.env[TIMEOUT_VARIABLE] = "1000";
});
afterAll(() => {
  if (timeoutBefore === undefined) delete process.env[TIMEOUT_VARIABLE];
  else process.env[TIMEOUT_VARIABLE] = timeoutBefore;
});

/** A listener that takes connections and never answers; counts how many are open at once. */
async function silentCollector() {
  const open = new Set<Socket>();
  let most = 0;
  let total = 0;
  const server: Server = createServer((s) => {
    open.add(s);
    total++;
    most = Math.max(most, open.size);
    s.on("close", () => open.delete(s));
    s.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/v1/traces`,
    most: () => most,
    total: () => total,
    stop: () => {
      for (const s of open) s.destroy();
      server.close();
    },
  };
}

/** A port nothing listens on: connections are refused. */
async function closedPort(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/v1/traces`;
}

/**
 * Makes spans back to back until several exports failed and the queue overflowed, checking the
 * pipeline after every thousand; returns the spans made, the warnings logged and the largest counts seen.
 */
async function underLoad(url: string) {
  const warnings: string[] = [];
  const log = createLogger("warn", { format: "json", destination: { write: (line: string) => void warnings.push(line) } });
  const tracing = startTracing(loadSettings({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: url }), ["registry"], log);
  if (!tracing) throw new Error("tracing did not start");
  const started = Date.now();
  let made = 0;
  let mostInFlight = 0;
  let mostQueued = 0;
  try {
    await eventually(
      async () => {
        for (let i = 0; i < 1000; i++) {
          await inSpan("load", { attributes: { "shop.order_id": crypto.randomUUID() } }, async () => {});
          made++;
          if (i % 100 === 0) {
            const s = tracing.stats();
            mostInFlight = Math.max(mostInFlight, s.inFlight);
            mostQueued = Math.max(mostQueued, s.queued);
          }
        }
        const s = tracing.stats();
        return s.dropped.export_failed >= 4 * BATCH && s.dropped.queue_full > 0;
      },
      180_000,
      0,
    );
    const s = tracing.stats();
    // /metrics says the same.
    const registry = new Registry();
    tracingMetrics(registry, tracing);
    const text = await registry.metrics();
    const sample = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, "m").exec(text)?.[1]);
    expect(sample('shop_trace_spans_dropped_total\\{reason="queue_full"\\}')).toBe(s.dropped.queue_full);
    expect(sample('shop_trace_spans_dropped_total\\{reason="export_failed"\\}')).toBe(s.dropped.export_failed);
    expect(sample("shop_trace_spans_queued")).toBe(s.queued);
    expect(sample("shop_trace_exports_in_flight")).toBe(s.inFlight);
    // Every span made is exported, dropped (by reason) or still waiting: nothing is lost uncounted.
    expect(s.exported + s.dropped.queue_full + s.dropped.export_failed + s.queued).toBe(made);
    expect(s.exported).toBe(0);
    return { made, stats: s, mostInFlight, mostQueued, warnings, minutes: (Date.now() - started) / 60_000 };
  } finally {
    await tracing.stop();
  }
}

const dropWarnings = (lines: string[]) => lines.filter((l) => l.includes("tracing: spans dropped"));

test("a closed port: spans are dropped and counted, at most 8192 wait, one export at a time, one warning a minute", async () => {
  const r = await underLoad(await closedPort());
  expect(r.mostInFlight).toBeLessThanOrEqual(1);
  expect(r.mostQueued).toBeLessThanOrEqual(MAX_QUEUED);
  expect(r.stats.queued).toBeLessThanOrEqual(MAX_QUEUED);
  expect(dropWarnings(r.warnings).length).toBeGreaterThanOrEqual(1);
  expect(dropWarnings(r.warnings).length).toBeLessThanOrEqual(1 + Math.floor(r.minutes));
  console.log(`closed port: ${r.made} spans made, ${JSON.stringify(r.stats)}`);
}, 240_000);

test("a collector that accepts and never answers: the same, and it never holds more than one connection of ours at a time", async () => {
  const collector = await silentCollector();
  try {
    const r = await underLoad(collector.url);
    expect(r.mostInFlight).toBeLessThanOrEqual(1);
    expect(r.mostQueued).toBeLessThanOrEqual(MAX_QUEUED);
    expect(dropWarnings(r.warnings).length).toBeGreaterThanOrEqual(1);
    expect(dropWarnings(r.warnings).length).toBeLessThanOrEqual(1 + Math.floor(r.minutes));
    // Each attempt was a connection of its own, given up after the timeout; never several at once
    // (a closing one may still be open on our side as the next arrives).
    expect(collector.total()).toBeGreaterThanOrEqual(4);
    expect(collector.most()).toBeLessThanOrEqual(2);
    console.log(
      `silent collector: ${r.made} spans made, ${collector.total()} connections (at most ${collector.most()} at once), ${JSON.stringify(r.stats)}`,
    );
  } finally {
    collector.stop();
  }
}, 240_000);
