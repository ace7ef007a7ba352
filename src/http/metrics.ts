/**
 * GET /metrics in the Prometheus text format: the service's registry, then the process's
 * (src/metrics/); and the HTTP request metrics every service app counts.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { Counter, Histogram, Registry } from "prom-client";
import { processMetrics, processReading } from "../metrics/process";
import type { MetricsRegistry } from "../metrics/registry";
import { routePattern } from "./route-pattern";
import { createRouter } from "./router";

const route = createRoute({
  method: "get",
  path: "/metrics",
  tags: ["health"],
  summary: "Prometheus metrics",
  description: "This service's metrics in the Prometheus text format: HTTP requests, outbox, consumers, orders, the process.",
  responses: { 200: { description: "Metrics", content: { "text/plain": { schema: z.string() } } } },
});

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
