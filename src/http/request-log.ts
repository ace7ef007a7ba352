/**
 * Every HTTP request gets a request id and one log line. The id is the client's `X-Request-Id`
 * when it is sane, else a new UUID; it is echoed on every answer, and the request runs under it
 * (src/request-context.ts), so the messages it leads to and their log lines carry it too.
 */
import type { Context, MiddlewareHandler } from "hono";
import { REQUEST_ID_PATTERN } from "../contracts";
import type { LogFields, Logger } from "../log";
import { withRequestId } from "../request-context";
import { routePattern } from "./route-pattern";

const REQUEST_ID_HEADER = "X-Request-Id";

/** Paths polled by orchestrators and scrapers: logged at debug, to keep the noise down. */
export const PROBE = /^\/(health|metrics)(\/|$)/;

/** The client's request id if it is 1..128 characters of [A-Za-z0-9._:-]; otherwise a new one (never an echo of garbage). */
function requestIdFrom(header: string | undefined): string {
  return header !== undefined && REQUEST_ID_PATTERN.test(header) ? header : crypto.randomUUID();
}

/** The outermost middleware: request id in, request id out, one line per request once it is answered. */
export function requestLog(log: Logger): MiddlewareHandler {
  return async (c, next) => {
    const started = performance.now();
    const requestId = requestIdFrom(c.req.header(REQUEST_ID_HEADER));
    c.header(REQUEST_ID_HEADER, requestId);
    await withRequestId(requestId, next);
    echo(c, requestId);
    const route = routePattern(c);
    const status = c.res.status;
    const fields: LogFields = {
      method: c.req.method.slice(0, 20),
      route,
      status,
      duration_ms: Math.round((performance.now() - started) * 10) / 10,
      request_id: requestId,
    };
    // No route: the path is all there is to go on (shortened: it is the client's text).
    if (route === null) fields.path = c.req.path.slice(0, 200);
    if (status === 500) log.error("request", fields);
    else if (PROBE.test(c.req.path)) log.debug("request", fields);
    else if (status > 500) log.warn("request", fields);
    else log.info("request", fields);
  };
}

/** Makes sure the answer names the request id, whatever stage produced it. */
function echo(c: Context, requestId: string): void {
  if (c.res.headers.get(REQUEST_ID_HEADER) === requestId) return;
  try {
    c.res.headers.set(REQUEST_ID_HEADER, requestId);
  } catch {
    // Immutable headers (a Response made elsewhere): answer with a copy.
    c.res = new Response(c.res.body, c.res);
    c.res.headers.set(REQUEST_ID_HEADER, requestId);
  }
}
