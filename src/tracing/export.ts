/**
 * Spans on their way to the collector, bounded and counted. A collector that is down must cost a
 * bounded queue, not memory that grows with the load:
 *
 * - the queue: at most `maxQueued` ended spans wait for export; past it a span is dropped at once;
 * - the export: one batch in flight at a time, its retries inside the exporter's timeout; batches
 *   the processor hands over meanwhile wait, counted in the queue; a failed export drops them;
 * - the transport is `fetch` (the exporter's browser transport): the `node:http` one leaks the
 *   body of every request it abandons on Bun (a collector that accepts and never answers: about
 *   the payload per attempt, for good), while an aborted `fetch` frees it.
 *
 * Every span dropped, at the queue or by a failed export, is counted (`shop_trace_spans_dropped_total`),
 * and a warning says so at most once a minute.
 */
import type { Context } from "@opentelemetry/api";
import { type ExportResult, ExportResultCode } from "@opentelemetry/core";
import { OTLPExporterBase } from "@opentelemetry/otlp-exporter-base";
import { createOtlpSendBeaconExportDelegate } from "@opentelemetry/otlp-exporter-base/browser-http";
import { convertLegacyHttpOptions, createOtlpHttpExporterMetrics } from "@opentelemetry/otlp-exporter-base/node-http";
import { JsonTraceSerializer, TraceExporterMetricsHelper } from "@opentelemetry/otlp-transformer";
import type { ReadableSpan, Span, SpanExporter, SpanProcessor } from "@opentelemetry/sdk-trace";
import type { Logger } from "../log";

/** Why a span was not exported: the queue was full, or the export of its batch failed (or was refused while another was in flight). */
export type DropReason = "queue_full" | "export_failed";

/** What the export pipeline holds and has lost, read by /metrics and the tests. */
export interface ExportStats {
  /** Ended spans waiting for export (in the processor's queue or handed over and not sent yet). */
  queued: number;
  /** Exports sent and not settled (0 or 1; batches waiting behind it count in `queued`). */
  inFlight: number;
  /** Spans exported (the collector answered 2xx). */
  exported: number;
  /** Spans dropped, by reason. */
  dropped: Record<DropReason, number>;
}

/** A batch handed to the exporter, and the processor's callback. */
interface Batch {
  spans: ReadableSpan[];
  done: (result: ExportResult) => void;
}

/** How often a warning about dropped spans is logged, at most. */
const DROP_WARN_EVERY_MS = 60_000;

/**
 * OTLP/HTTP JSON, built from the pieces `@opentelemetry/exporter-trace-otlp-http` is made of (the
 * same settings: OTEL_EXPORTER_OTLP_* headers and timeout read from the environment; the same
 * retries, within that timeout), but sending with `fetch` (the exporter's browser transport).
 */
export function otlpFetchExporter(url: string): SpanExporter {
  const options = convertLegacyHttpOptions({ url }, "TRACES", "v1/traces", { "Content-Type": "application/json" });
  const metrics = createOtlpHttpExporterMetrics("otlp_http_span_exporter", TraceExporterMetricsHelper, options.url, undefined);
  return new OTLPExporterBase(createOtlpSendBeaconExportDelegate(options, JsonTraceSerializer, metrics));
}

/**
 * Wraps a batching span processor and its exporter: counts what waits and what is in flight,
 * drops (and counts) a span when `maxQueued` wait already, and a batch while another is in flight.
 * `makeProcessor` gets the counting exporter to batch into.
 */
export class BoundedExport implements SpanProcessor {
  private readonly stats: ExportStats = { queued: 0, inFlight: 0, exported: 0, dropped: { queue_full: 0, export_failed: 0 } };
  private readonly inner: SpanProcessor;
  private lastWarn = 0;
  /** Batches the processor handed over while another was in flight. */
  private readonly waiting: Batch[] = [];
  private droppedSinceWarn = 0;

  constructor(
    private readonly exporter: SpanExporter,
    private readonly maxQueued: number,
    private readonly log: Logger,
    makeProcessor: (exporter: SpanExporter) => SpanProcessor,
  ) {
    this.inner = makeProcessor(this.countingExporter());
  }

  /** A copy of the counts now. */
  snapshot(): ExportStats {
    return { ...this.stats, dropped: { ...this.stats.dropped } };
  }

  onStart(span: Span, parentContext: Context): void {
    this.inner.onStart(span, parentContext);
  }

  onEnd(span: ReadableSpan): void {
    // The batching processor keeps sampled spans only.
    if ((span.spanContext().traceFlags & 1) === 0) return;
    if (this.stats.queued >= this.maxQueued) {
      this.drop("queue_full", 1);
      return;
    }
    this.stats.queued++;
    this.inner.onEnd(span);
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  private drop(reason: DropReason, count: number, err?: unknown): void {
    this.stats.dropped[reason] += count;
    this.droppedSinceWarn += count;
    const now = Date.now();
    if (now - this.lastWarn < DROP_WARN_EVERY_MS) return;
    this.lastWarn = now;
    const error = err instanceof Error ? err.message : err === undefined ? undefined : String(err);
    this.log.warn("tracing: spans dropped, the collector does not take them", {
      dropped: this.droppedSinceWarn,
      reason,
      ...(error ? { error: error.slice(0, 300) } : {}),
      dropped_total: this.stats.dropped.queue_full + this.stats.dropped.export_failed,
    });
    this.droppedSinceWarn = 0;
  }

  /** Sends one batch; when it settles, the next waiting one (after a failure, the waiting ones are dropped: the collector is down). */
  private send(batch: Batch): void {
    this.stats.inFlight++;
    this.exporter.export(batch.spans, (result) => {
      this.stats.inFlight--;
      this.stats.queued = Math.max(0, this.stats.queued - batch.spans.length);
      if (result.code === ExportResultCode.SUCCESS) this.stats.exported += batch.spans.length;
      else this.drop("export_failed", batch.spans.length, result.error);
      batch.done(result);
      if (result.code !== ExportResultCode.SUCCESS) {
        for (const waiting of this.waiting.splice(0)) {
          this.stats.queued = Math.max(0, this.stats.queued - waiting.spans.length);
          this.drop("export_failed", waiting.spans.length);
          waiting.done({ code: ExportResultCode.FAILED, error: new Error("the previous export failed") });
        }
      }
      const next = this.waiting.shift();
      if (next) this.send(next);
    });
  }

  /**
   * The exporter the batching processor sends to: one batch at a time, the others wait (still
   * counted as queued). The SDK's processor means to send one at a time, but after a failed
   * export it can send a batch for every span that ends (its `.catch` clears its "exporting" flag
   * after its `.finally` started the next export), which would pile exports up.
   */
  private countingExporter(): SpanExporter {
    return {
      export: (spans: ReadableSpan[], done: (result: ExportResult) => void) => {
        const batch = { spans, done };
        if (this.stats.inFlight > 0) this.waiting.push(batch);
        else this.send(batch);
      },
      shutdown: () => this.exporter.shutdown(),
      forceFlush: () => this.exporter.forceFlush?.() ?? Promise.resolve(),
    };
  }
}
