/** The HTTP shell every service shares: errors, admin token, body checks, health, metrics, OpenAPI, Swagger UI. */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Logger } from "../log";
import { type MetricsRegistry, Registry } from "../metrics/registry";
import { asyncApiRoutes } from "./asyncapi";
import type { AsyncApiOptions } from "./asyncapi-document";
import { documentAdmin, needsAdmin, requireAdmin } from "./auth";
import { documentShellErrors, errorBody, errorHandler, validationHook } from "./errors";
import { bodyDeadline, checkedJsonBody, hardeningHeaders, headLength, hostGuard } from "./guards";
import { type HealthCheck, type HealthOptions, healthRoutes, readinessGate } from "./health";
import { httpMetrics, metricsRoutes } from "./metrics";
import { requestLog } from "./request-log";
import type { Router } from "./router";
import { serviceInfo } from "./schemas";
import { mountSwagger } from "./swagger";
import { traceRequests } from "./tracing";

/**
 * How long a request body may take: a pause of 5 s, or 30 s in all (1 MiB, the default body
 * limit, at 35 KB/s), is answered 408.
 */
const BODY_DEADLINE = { stallMs: 5_000, totalMs: 30_000 };

/**
 * Bun times a request out after its idle timeout (10 s) however steadily its body arrives, and
 * closes the connection without an answer. A request with a body gets this long from Bun
 * instead (seconds; Bun checks every few seconds), so that BODY_DEADLINE answers first.
 */
const BUN_BODY_TIMEOUT_S = BODY_DEADLINE.totalMs / 1000 + 10;

/** What Bun passes to fetch() besides the request (absent under app.request() in tests). */
interface BunServer {
  timeout?(request: Request, seconds: number): void;
  url?: URL;
}

/** What a service's app is built from. */
interface ServiceAppOptions {
  title: string;
  routers: Router[];
  checks: Record<string, HealthCheck>;
  /** Consumer groups shown by /health. */
  consumers?: HealthOptions["consumers"];
  /** Why the service is not ready (null when it is): state-changing requests get 503 not_ready meanwhile. */
  notReady?: () => string | null;
  /** The service's registry, rendered by /metrics; the app adds its HTTP families to it (absent: a registry of its own). */
  metrics?: MetricsRegistry;
  /** Checks that only /health/ready runs, besides `checks` (the outbox backlog bound). */
  readyChecks?: Record<string, HealthCheck>;
  bodyLimitBytes: number;
  /** Bearer token for routes under /admin/ and routes whose OpenAPI `security` names the admin scheme. */
  adminToken: string;
  log: Logger;
  /** What GET /asyncapi.json is built from: the service's topic names, brokers and partitions. */
  messages: AsyncApiOptions;
}

/** Builds one service's app around the routes of the modules it serves. */
export function createServiceApp(opts: ServiceAppOptions): OpenAPIHono {
  const app = new OpenAPIHono({ strict: false, defaultHook: validationHook });
  app.onError(errorHandler(opts.log));
  app.notFound((c) => {
    const allowed = allowedMethods(app, c.req.path);
    // Named as sent, percent-encoded: a byte that is not UTF-8 (Bun reads it as U+FFFD) is never echoed decoded.
    const path = new URL(c.req.url).pathname;
    if (allowed.length === 0) return c.json(errorBody("not_found", `no route for ${c.req.method} ${path}`), 404);
    c.header("Allow", allowed.join(", "));
    return c.json(errorBody("method_not_allowed", `${path} allows ${allowed.join(", ")}`), 405);
  });
  const metrics = opts.metrics ?? new Registry();
  useGuards(app, opts, metrics);
  mountRoutes(app, opts, metrics);
  const dispatch = app.fetch;
  app.fetch = (request, server?: BunServer, ctx?) => {
    if (server?.timeout && request.body !== null) server.timeout(request, BUN_BODY_TIMEOUT_S);
    return dispatch(ownPath(request, server), server, ctx);
  };
  return app;
}

/** The middleware every request passes, outermost first: tracing, logging, counting, then the checks. */
function useGuards(app: OpenAPIHono, opts: ServiceAppOptions, metrics: MetricsRegistry): void {
  // Outermost of all: the request's span (tracing on), so that everything below, its log line too, is in it.
  app.use(traceRequests);
  // The request id is set before anything answers, and every answer is logged.
  app.use(requestLog(opts.log));
  // Outermost: every answer is counted, whatever stage gave it.
  app.use(httpMetrics(metrics));
  // Before every check that can answer: its answers carry the headers too.
  app.use(hardeningHeaders);
  app.use(hostGuard);
  app.use(headLength);
  if (opts.notReady) app.use(readinessGate(opts.notReady));
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
  app.use(jsonInUtf8);
  app.use(bodyDeadline(BODY_DEADLINE));
  app.use(
    bodyLimit({
      maxSize: opts.bodyLimitBytes,
      onError: (c) => c.json(errorBody("payload_too_large", `request body is over ${opts.bodyLimitBytes} bytes`), 413),
    }),
  );
  app.use(checkedJsonBody);
}

/** The shell's routes (health, metrics, AsyncAPI), the modules' routes, the OpenAPI document and Swagger UI. */
function mountRoutes(app: OpenAPIHono, opts: ServiceAppOptions, metrics: MetricsRegistry): void {
  app.route("/", healthRoutes(opts.checks, { consumers: opts.consumers, readyChecks: opts.readyChecks }));
  app.route("/", metricsRoutes(metrics));
  app.route("/", asyncApiRoutes(opts.messages));
  for (const router of opts.routers) app.route("/", router);
  let doc: object | null = null;
  app.get("/openapi.json", (c) => {
    doc ??= documentAdmin(documentShellErrors(app.getOpenAPI31Document({ openapi: "3.1.0", info: serviceInfo(opts.title) })));
    // A relative server: Swagger UI's "Try it out" calls the service the document came from, on whatever
    // host and port it was reached, and nothing in the document repeats the request's Host header.
    return c.json({ ...doc, servers: [{ url: "/", description: `${opts.title}: the service this document was served from` }] });
  });
  mountSwagger(app, "/openapi.json", opts.title);
}

/**
 * A request without a Host header (HTTP/1.0 allows it) reaches fetch() with only its path as
 * the URL (`/orders/1`), and Hono, which expects `scheme://host/`, would route it by what
 * follows the first slash past the fourth character (`/1`), so `/evil/wallets/1` would reach
 * `/wallets/1`. Such a request is given the server's own origin, so the request line's path is
 * the path it is routed by.
 */
function ownPath(request: Request, server: BunServer | undefined): Request {
  if (request.url.charCodeAt(0) !== 0x2f /* / */) return request;
  const origin = server?.url?.origin ?? "http://localhost";
  // Through URL, which resolves dot segments as for a request with a Host (`/stock/4/..` is
  // `/stock/`); Bun's Request keeps them when its init is a Request.
  // Appended, not resolved: `//products` is a path, not a protocol-relative URL naming host "products".
  return new Request(new URL(`${origin}${request.url}`).href, request);
}

/**
 * A body in the JSON family must be plain `application/json` in UTF-8: no charset parameter or
 * `charset=utf-8` (any case, quoted or not); otherwise 415. Other media types are left to the
 * route, which answers 415 if it takes a JSON body (and 404 where there is no route). A body with
 * a `Content-Encoding` other than `identity` is 415 too: nothing here decodes one.
 */
const jsonInUtf8: MiddlewareHandler = async (c, next) => {
  const type = c.req.header("content-type");
  if (type !== undefined && c.req.raw.body !== null && !acceptableJson(type)) {
    return c.json(errorBody("unsupported_media_type", "send the body as application/json in UTF-8"), 415);
  }
  // Nothing decodes a content coding: a body sent as gzip would be read as if it were plain JSON.
  const coding = c.req.header("content-encoding");
  if (coding !== undefined && c.req.raw.body !== null && coding.trim().toLowerCase() !== "identity") {
    return c.json(errorBody("unsupported_media_type", "send the body without a Content-Encoding", "Content-Encoding"), 415);
  }
  await next();
};

/** False for a JSON-family media type other than UTF-8 `application/json`; true for the rest. */
function acceptableJson(contentType: string): boolean {
  const [media = "", ...params] = contentType.split(";");
  const essence = media.trim().toLowerCase();
  if (!essence.endsWith("/json") && !essence.endsWith("+json")) return true;
  if (essence !== "application/json") return false;
  for (const param of params) {
    const eq = param.indexOf("=");
    const name = (eq < 0 ? param : param.slice(0, eq)).trim().toLowerCase();
    if (name !== "charset") continue;
    const value = param
      .slice(eq + 1)
      .trim()
      .replace(/^"(.*)"$/, "$1")
      .toLowerCase();
    if (value !== "utf-8") return false;
  }
  return true;
}

/** Methods of the documented routes whose path matches `path` (for a 405 with Allow). */
function allowedMethods(app: OpenAPIHono, path: string): string[] {
  const methods = new Set<string>();
  for (const def of app.openAPIRegistry.definitions) {
    if (def.type !== "route") continue;
    const pattern = def.route.path
      .split(/{[^}]+}/)
      .map((part) => part.replaceAll(/[.*+?^$()|[\]\\]/g, "\\$&"))
      .join("[^/]+");
    if (new RegExp(`^${pattern}/?$`).test(path)) methods.add(def.route.method.toUpperCase());
  }
  if (methods.has("GET")) methods.add("HEAD");
  return [...methods].sort();
}
