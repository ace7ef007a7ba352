/** The HTTP shell every service shares: errors, admin token, body limit, health, metrics, OpenAPI, Swagger UI. */
import { OpenAPIHono } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import type { Logger } from "../log";
import { documentAdmin, needsAdmin, requireAdmin } from "./auth";
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
  /** Bearer token for routes under /admin/ and routes whose OpenAPI `security` names the admin scheme. */
  adminToken: string;
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
  // Admin routes refuse a request without the token before anything else looks at it.
  const admin = requireAdmin(opts.adminToken);
  app.use("/admin/*", admin);
  for (const router of opts.routers) {
    for (const def of router.openAPIRegistry.definitions) {
      if (def.type === "route" && needsAdmin(def.route.security)) {
        app.on(def.route.method.toUpperCase(), def.route.path.replaceAll(/\/{(.+?)}/g, "/:$1"), admin);
      }
    }
  }
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
  let doc: unknown = null;
  app.get("/openapi.json", (c) =>
    c.json((doc ??= documentAdmin(app.getOpenAPI31Document({ openapi: "3.1.0", info: { title: opts.title, version: "1.0.0" } })))),
  );
  mountSwagger(app, "/openapi.json", opts.title);
  return app;
}
