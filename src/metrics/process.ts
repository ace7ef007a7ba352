/**
 * The process's own metrics (memory, CPU, event-loop lag): prom-client's default collectors, in
 * one registry per process, appended once to every service's /metrics (src/http/metrics.ts).
 */
import { collectDefaultMetrics, Registry } from "prom-client";

/**
 * Default collectors that say nothing true under Bun, left out: active handles, requests and
 * resources are always 0 (Bun has no process._getActiveHandles), the GC histogram never gets an
 * observation, `process_heap_bytes` is VmData (gigabytes of address space Bun reserves, not heap),
 * and the per-space heap figures are V8's spaces, all 0 but one under JavaScriptCore.
 */
const NOT_UNDER_BUN = [
  "nodejs_active_handles",
  "nodejs_active_handles_total",
  "nodejs_active_requests",
  "nodejs_active_requests_total",
  "nodejs_active_resources",
  "nodejs_active_resources_total",
  "nodejs_gc_duration_seconds",
  "process_heap_bytes",
  "nodejs_heap_space_size_total_bytes",
  "nodejs_heap_space_size_used_bytes",
  "nodejs_heap_space_size_available_bytes",
];

let processRegistry: Registry | null = null;

/** How often the event-loop delay histogram takes a sample, ms. */
const EVENT_LOOP_SAMPLE_MS = 500;

/** The process's registry: prom-client's default metrics, collected once per process. */
export function processMetrics(): Registry {
  if (processRegistry) return processRegistry;
  const registry = new Registry();
  // The event-loop delay is sampled every 500 ms, not prom-client's 10 ms: a timer firing 100
  // times a second was most of an idle process's CPU (1.7-2.0% of a core idle; 0.7% at this setting).
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  for (const name of NOT_UNDER_BUN) registry.removeSingleMetric(name);
  // nodejs_eventloop_lag_seconds is measured after each reading (a setImmediate): take one now so the first scrape has a value.
  void registry.metrics();
  processRegistry = registry;
  return registry;
}

/** The process's metrics are read at most this often; scrapes in between get the last reading. */
const PROCESS_READING_MS = 1000;
let reading: { at: number; text: Promise<string> } | null = null;

/**
 * The process registry's text. The services of one process, scraped one after the other, share a
 * reading: the event-loop delay histogram is reset by each reading, so three readings in a row
 * would leave the second and third with an empty one (min 9.2e9 s, max 0).
 */
export function processReading(): Promise<string> {
  const now = performance.now();
  if (!reading || now - reading.at >= PROCESS_READING_MS) reading = { at: now, text: processMetrics().metrics() };
  return reading.text;
}
