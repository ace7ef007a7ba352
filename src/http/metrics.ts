/**
 * GET /metrics in the Prometheus text format, on prom-client. Each service app has its own
 * registry (in one process the three services are three apps on three ports, so each scrape
 * target reports its own service); the process's own metrics (memory, CPU, event-loop lag)
 * live in one registry per process and are appended to every service's output once.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { Database } from "../db/database";
import { routePattern } from "./route-pattern";
import { createRouter } from "./router";

export { Registry };

/** A service's registry: every family of one service app, rendered by its /metrics. */
export type MetricsRegistry = Registry;

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
function processMetrics(): Registry {
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

const route = createRoute({
  method: "get",
  path: "/metrics",
  tags: ["health"],
  summary: "Prometheus metrics",
  description: "This service's metrics in the Prometheus text format: HTTP requests, outbox, consumers, orders, the process.",
  responses: { 200: { description: "Metrics", content: { "text/plain": { schema: z.string() } } } },
});

/** The process's metrics are read at most this often; scrapes in between get the last reading. */
const PROCESS_READING_MS = 1000;
let reading: { at: number; text: Promise<string> } | null = null;

/**
 * The process registry's text. The services of one process, scraped one after the other, share a
 * reading: the event-loop delay histogram is reset by each reading, so three readings in a row
 * would leave the second and third with an empty one (min 9.2e9 s, max 0).
 */
function processReading(): Promise<string> {
  const now = performance.now();
  if (!reading || now - reading.at >= PROCESS_READING_MS) reading = { at: now, text: processMetrics().metrics() };
  return reading.text;
}

/** Routes for /metrics: the service's registry, then the process's. */
export function metricsRoutes(registry: MetricsRegistry) {
  // Created with the first app, not at its first scrape: the event-loop histogram has samples by then.
  processMetrics();
  return createRouter().openapi(route, async (c) => {
    const [own, shared] = await Promise.all([registry.metrics(), processReading()]);
    return c.text(`${own}\n${shared}`, 200, { "content-type": Registry.PROMETHEUS_CONTENT_TYPE });
  });
}

/** Methods counted by name; any other (a client may send any token) counts as OTHER. */
const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/** The route label of a request no route matched: never the raw path (unbounded cardinality). */
const UNMATCHED_ROUTE = "unmatched";

/**
 * Counts every answer and times it by method, route pattern (`/orders/{id}`) and status:
 * `shop_http_requests_total` and `shop_http_request_duration_seconds`. Mount it outermost.
 */
export function httpMetrics(registry: MetricsRegistry): MiddlewareHandler {
  const labelNames = ["method", "route", "status"] as const;
  const requests = new Counter({
    name: "shop_http_requests_total",
    help: "HTTP requests answered, by method, route pattern and status",
    labelNames,
    registers: [registry],
  });
  const duration = new Histogram({
    name: "shop_http_request_duration_seconds",
    help: "Time from a request's arrival to its answer, by method, route pattern and status",
    labelNames,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  // The two series of each method, route and status, looked up once: prom-client hashes a label
  // object on every inc or observe, a cost paid per request otherwise.
  const series = new Map<string, { count: { inc(): void }; time: { observe(v: number): void } }>();
  return async (c, next) => {
    const started = performance.now();
    await next();
    const method = KNOWN_METHODS.has(c.req.method) ? c.req.method : "OTHER";
    const route = routePattern(c) ?? UNMATCHED_ROUTE;
    const status = String(c.res.status);
    const key = `${method} ${route} ${status}`;
    let s = series.get(key);
    if (!s) {
      const labels = { method, route, status };
      s = { count: requests.labels(labels), time: duration.labels(labels) };
      series.set(key, s);
    }
    s.count.inc();
    s.time.observe((performance.now() - started) / 1000);
  };
}


/**
 * Gauges of the database handle: `shop_db_pool_max`, `shop_db_pool_in_use`,
 * `shop_db_pool_waiting` (see PoolUse) and the statement and transaction counts.
 */
export function databaseMetrics(registry: MetricsRegistry, db: Database): void {
  const pool = [
    ["max", "Connections the database handle may open (PGlite: 1)", (p) => p.max],
    ["in_use", "Connections busy now (PostgreSQL: units of work in flight, up to max; PGlite: 1 while the mutex is held)", (p) => p.inUse],
    ["waiting", "Units of work waiting for a connection (PostgreSQL: in flight past max; PGlite: queued on the mutex)", (p) => p.waiting],
  ] as const satisfies readonly (readonly [string, string, (p: ReturnType<Database["pool"]>) => number])[];
  for (const [name, help, read] of pool) {
    new Gauge({
      name: `shop_db_pool_${name}`,
      help,
      registers: [registry],
      collect() {
        this.set(read(db.pool()));
      },
    });
  }
  const counts = [
    ["shop_db_statements_total", "Statements sent to the database, BEGIN and COMMIT/ROLLBACK included", () => db.stats.statements],
    ["shop_db_transactions_total", "Transactions run", () => db.stats.transactions],
  ] as const;
  for (const [name, help, read] of counts) {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  }
}

/**
 * Runs `read` once for every gauge that asks during one scrape (prom-client collects the
 * families of a registry concurrently), so the gauges of one query cost one query.
 */
function oncePerScrape<T>(read: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | null = null;
  return () =>
    (pending ??= read().finally(() => {
      pending = null;
    }));
}

/** One family of gauges set at scrape time from a shared read (see tableGauges). */
export interface TableGauge<T, L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
  /** The samples of this family from what `read` returned. */
  values: (snapshot: T) => { labels?: Partial<Record<L, string>>; value: number }[];
}

/**
 * Registers gauges computed at scrape time from one `read` (a query of the module's tables).
 * If the read fails, those families show no samples for that scrape; the rest of /metrics is served.
 */
export function tableGauges<T>(registry: MetricsRegistry, read: () => Promise<T>, families: TableGauge<T, string>[]): void {
  const snapshot = oncePerScrape(read);
  for (const family of families) {
    new Gauge({
      name: family.name,
      help: family.help,
      labelNames: family.labelNames ?? [],
      registers: [registry],
      async collect() {
        this.reset();
        const data = await snapshot().catch(() => null);
        if (data === null) return;
        for (const { labels, value } of family.values(data)) {
          if (labels) this.set(labels, value);
          else this.set(value);
        }
      },
    });
  }
}
