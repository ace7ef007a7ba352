/**
 * Tracing's start and stop: an OpenTelemetry tracer provider exporting over OTLP/HTTP (JSON) when
 * an endpoint is set, with an AsyncLocalStorage context manager (the one the request id rides on
 * too, src/request-context.ts) and the standard OTEL_* variables. Nothing is installed otherwise.
 */
import { context, DiagLogLevel, diag, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  type Sampler,
  type SpanExporter,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import packageJson from "../../package.json";
import type { Settings, TraceSampler } from "../config";
import { InvariantError } from "../errors";
import type { Logger } from "../log";
import { BoundedExport, type ExportStats, otlpFetchExporter } from "./export";
import { setTracingOn } from "./spans";

/** The settings tracing reads (all OpenTelemetry's standard variables). */
type TracingSettings = Pick<
  Settings,
  | "OTEL_EXPORTER_OTLP_ENDPOINT"
  | "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
  | "OTEL_TRACES_EXPORTER"
  | "OTEL_SERVICE_NAME"
  | "OTEL_TRACES_SAMPLER"
  | "OTEL_TRACES_SAMPLER_ARG"
  | "OTEL_SDK_DISABLED"
>;

/** Installed tracing: where spans go, and its stop (which sends what is left). */
export interface Tracing {
  /** The OTLP URL spans are posted to, or "console". */
  destination: string;
  /** Sends the spans not yet exported (at most `STOP_TIMEOUT_MS`), then uninstalls the provider. */
  stop(): Promise<void>;
  /** Spans queued, exports in flight, spans exported and dropped so far (export.ts). */
  stats(): ExportStats;
}

/** The longest a stop waits for the last spans to go out (an unreachable collector must not hold a stop up). */
const STOP_TIMEOUT_MS = 5_000;

/** Spans waiting for export, at most: beyond it new spans are dropped (and counted, export.ts), memory stays bounded. */
const MAX_QUEUED_SPANS = 8192;

/** How often a failing export is logged, at most. */
const EXPORT_WARN_EVERY_MS = 60_000;

/** Where spans go: the traces URL, "console", or null (tracing off). */
function traceDestination(s: TracingSettings): string | null {
  if (s.OTEL_SDK_DISABLED || s.OTEL_TRACES_EXPORTER === "none") return null;
  if (s.OTEL_TRACES_EXPORTER === "console") return "console";
  if (s.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return s.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (s.OTEL_EXPORTER_OTLP_ENDPOINT) return `${s.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, "")}/v1/traces`;
  return null;
}

/**
 * Installs tracing for a process serving `modules` when the settings ask for it; null (and
 * nothing installed) when they do not. One provider per process: a second start is refused.
 */
export function startTracing(s: TracingSettings, modules: readonly string[], log: Logger): Tracing | null {
  const destination = traceDestination(s);
  if (destination === null) return null;
  if (installed) throw new InvariantError("tracing is already installed in this process");
  diag.setLogger(diagnostics(log), DiagLogLevel.WARN);
  const exporter: SpanExporter = destination === "console" ? new ConsoleSpanExporter() : otlpFetchExporter(destination);
  const bounded = new BoundedExport(
    exporter,
    MAX_QUEUED_SPANS,
    log,
    (counted) => new BatchSpanProcessor({ exporter: counted, maxQueueSize: MAX_QUEUED_SPANS, scheduledDelayMillis: 1000 }),
  );
  const serviceName = modules.length === 1 ? String(modules[0]) : "shop";
  // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (envDetector) win over the defaults.
  // telemetry.sdk.* from the SDK, the service and its version from here; then the environment's.
  const resource = defaultResource()
    .merge(resourceFromAttributes({ "service.name": serviceName, "service.namespace": "shop", "service.version": packageJson.version }))
    .merge(detectResources({ detectors: [envDetector] }));
  const provider = new TracerProvider({
    resource,
    sampler: sampler(s.OTEL_TRACES_SAMPLER, s.OTEL_TRACES_SAMPLER_ARG ?? 1),
    spanProcessors: [bounded],
  });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  trace.setGlobalTracerProvider(provider);
  installed = true;
  setTracingOn(true);
  log.info("tracing on", { destination, service: resource.attributes["service.name"], sampler: s.OTEL_TRACES_SAMPLER });
  let stopped: Promise<void> | null = null;
  return {
    destination,
    stats: () => bounded.snapshot(),
    stop: () =>
      (stopped ??= (async () => {
        setTracingOn(false);
        let timer: Timer | undefined;
        const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), STOP_TIMEOUT_MS)));
        const outcome = await Promise.race([
          provider.shutdown().then(
            () => "sent" as const,
            (err: unknown) => err,
          ),
          late,
        ]);
        clearTimeout(timer);
        if (outcome === "late") log.warn("tracing: the last spans were not sent in time", { destination, timeout_ms: STOP_TIMEOUT_MS });
        else if (outcome !== "sent") log.warn("tracing: sending the last spans failed", { destination, err: outcome });
        trace.disable();
        context.disable();
        diag.disable();
        installed = false;
      })()),
  };
}

let installed = false;

/** OTEL_TRACES_SAMPLER as a sampler; `ratio` is OTEL_TRACES_SAMPLER_ARG. */
function sampler(name: TraceSampler, ratio: number): Sampler {
  switch (name) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return new TraceIdRatioBasedSampler(ratio);
    case "parentbased_always_on":
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
  }
}

/** The SDK's own warnings (a failed export, say) as log lines, at most one a minute. */
function diagnostics(log: Logger) {
  let last = 0;
  const warn = (message: string, ...args: unknown[]) => {
    const now = Date.now();
    if (now - last < EXPORT_WARN_EVERY_MS) return;
    last = now;
    log.warn(`tracing: ${message}`, {
      detail: args
        .map((a) => (a instanceof Error ? a.message : String(a)))
        .join(" ")
        .slice(0, 500),
    });
  };
  return { error: warn, warn, info: () => {}, debug: () => {}, verbose: () => {} };
}
