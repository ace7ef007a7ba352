/** The span export's metric families, read at scrape time from the process's tracing (setup.ts). */
import { Counter, Gauge, type Registry } from "prom-client";
import type { Tracing } from "./setup";

/**
 * Registers `shop_trace_spans_dropped_total{reason}` (queue_full, export_failed),
 * `shop_trace_spans_exported_total`, `shop_trace_spans_queued` and `shop_trace_exports_in_flight`
 * in `registry`: the process's figures (every service of a process reports the same).
 */
export function tracingMetrics(registry: Registry, tracing: Tracing): void {
  new Counter({
    name: "shop_trace_spans_dropped_total",
    help: "Spans this process did not export: queue_full (8192 waiting already), export_failed (the collector did not take their batch)",
    labelNames: ["reason"],
    registers: [registry],
    collect() {
      const { dropped } = tracing.stats();
      this.reset();
      for (const [reason, n] of Object.entries(dropped)) this.inc({ reason }, n);
    },
  });
  new Counter({
    name: "shop_trace_spans_exported_total",
    help: "Spans this process exported (the collector answered 2xx)",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(tracing.stats().exported);
    },
  });
  new Gauge({
    name: "shop_trace_spans_queued",
    help: "Ended spans of this process waiting for export (at most 8192)",
    registers: [registry],
    collect() {
      this.set(tracing.stats().queued);
    },
  });
  new Gauge({
    name: "shop_trace_exports_in_flight",
    help: "Span exports of this process sent and not settled (at most 1)",
    registers: [registry],
    collect() {
      this.set(tracing.stats().inFlight);
    },
  });
}
