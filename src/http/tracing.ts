/**
 * A SERVER span per request (OpenTelemetry's HTTP conventions): named by method and route
 * template, continuing the caller's trace when it sends a W3C `traceparent`. The request's log
 * line is written inside it. Probes (/health, /metrics) are not traced: they would bury the
 * traces people look for. Tracing off: the middleware only calls through.
 */
import type { MiddlewareHandler } from "hono";
import { contextOf, failedWith, inSpan, SpanKind, tracingOn } from "../tracing/spans";
import { PROBE } from "./request-log";
import { routePattern } from "./route-pattern";

/** Methods named as themselves; any other is `_OTHER` (the conventions' bound on a span name's cardinality). */
const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"]);

/** The outermost middleware while tracing is on. */
export const traceRequests: MiddlewareHandler = async (c, next) => {
  if (!tracingOn() || PROBE.test(c.req.path)) return next();
  const method = METHODS.has(c.req.method) ? c.req.method : "_OTHER";
  const parent = contextOf({ traceparent: c.req.header("traceparent"), tracestate: c.req.header("tracestate") });
  const url = new URL(c.req.url);
  await inSpan(
    method,
    {
      kind: SpanKind.SERVER,
      parent,
      attributes: {
        "http.request.method": method,
        "url.path": url.pathname.slice(0, 200),
        "url.scheme": url.protocol.replace(":", ""),
        "server.address": url.hostname,
        "server.port": Number(url.port) || (url.protocol === "https:" ? 443 : 80),
        "user_agent.original": c.req.header("user-agent")?.slice(0, 200),
      },
    },
    async (span) => {
      await next();
      const route = routePattern(c);
      const status = c.res.status;
      if (route !== null) {
        span?.updateName(`${method} ${route}`);
        span?.setAttribute("http.route", route);
      }
      span?.setAttribute("http.response.status_code", status);
      const requestId = c.res.headers.get("X-Request-Id");
      if (requestId) span?.setAttribute("shop.request_id", requestId);
      if (status >= 500) failedWith(span, String(status));
    },
  );
};
