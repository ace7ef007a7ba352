/** The HTTP shell every service shares: errors, body limit, health, metrics, OpenAPI, Swagger UI. */
import { OpenAPIHono } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import type { Logger } from "../log";
import { errorBody, errorHandler, validationHook } from "./errors";
import { type HealthCheck, healthRoutes } from "./health";
import { type MetricsSource, metricsRoutes } from "./metrics";
import type { Router } from "./router";
import { mountSwagger } from "./swagger";

/** Builds one service's app around the routes of the modules it serves. */
export function createServiceApp(opts: {
  title: string;
  routers: Router[];
  checks: Record<string, HealthCheck>;
  metrics: MetricsSource[];
  bodyLimitBytes: number;
  log: Logger;
}): OpenAPIHono {
  const app = new OpenAPIHono({ strict: false, defaultHook: validationHook });
  const counts = new Map<string, number>();
  app.onError(errorHandler(opts.log));
  app.notFound((c) => c.json(errorBody("not_found", `no route for ${c.req.method} ${c.req.path}`), 404));
  app.use(async (c, next) => {
    await next();
    const key = `${c.req.method} ${c.res.status}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  });
  app.use(
    bodyLimit({
      maxSize: opts.bodyLimitBytes,
      onError: (c) => c.json(errorBody("payload_too_large", "request body is too large"), 413),
    }),
  );
  const httpMetrics: MetricsSource = async () =>
    [...counts].map(([key, value]) => {
      const [method, status] = key.split(" ");
      return { name: "http_requests_total", labels: { method: method ?? "", status: status ?? "" }, value };
    });
  app.route("/", healthRoutes(opts.checks));
  app.route("/", metricsRoutes([httpMetrics, ...opts.metrics]));
  for (const router of opts.routers) app.route("/", router);
  app.doc31("/openapi.json", { openapi: "3.1.0", info: { title: opts.title, version: "1.0.0" } });
  mountSwagger(app, "/openapi.json", opts.title);
  return app;
}
