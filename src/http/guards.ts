/**
 * Checks the shell makes before a route sees a request, and headers on every answer: a Host that
 * is a host, a body that keeps arriving, JSON without repeated keys, browser hardening headers,
 * and a HEAD that tells the length its GET would have.
 */
import type { MiddlewareHandler } from "hono";
import { secureHeaders } from "hono/secure-headers";
import { MAX_JSON_DEPTH, scanJson } from "./duplicate-keys";
import { BodyTimeout, errorBody } from "./errors";

/**
 * RFC 9110's Host: a registered name (unreserved, sub-delims, percent-encoded), an IPv4 address or
 * a bracketed IPv6 literal, and an optional port.
 */
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::(\d{1,5}))?$/;

/** Whether `host` is a well-formed Host header value (port at most 65535). */
export function validHost(host: string): boolean {
  const m = HOST.exec(host);
  // A name that is not a URL host (`%00`, `%zz`) would make the request's URL invalid, and reading its body fail.
  return m !== null && (m[1] === undefined || Number(m[1]) <= 65_535) && URL.canParse(`http://${host}/`);
}

/**
 * A Host header that is not a host (`a b`, `x/y`) gets 400 `bad_host`: Bun would build the
 * request's URL from it and route the request to a path it never asked for. A request without
 * one (HTTP/1.0) is let through.
 */
export const hostGuard: MiddlewareHandler = async (c, next) => {
  const host = c.req.header("host");
  if (host !== undefined && !validHost(host)) {
    return c.json(errorBody("bad_host", "the Host header is not a host name or address with an optional port", "Host"), 400);
  }
  await next();
};

/** How long a request body may take: without a byte for `stallMs`, or in all past `totalMs`. */
export interface BodyDeadline {
  stallMs: number;
  totalMs: number;
}

/**
 * Puts a deadline on reading the request body: a read that waits `stallMs` for the next bytes,
 * or goes on past `totalMs` since the first read, fails with BodyTimeout, which the error handler
 * answers `408 request_timeout` (closing the connection). Without it, a body that stalls is cut
 * by Bun's idle timeout (10 s) with no answer at all. Goes before bodyLimit, which reads through it.
 */
export function bodyDeadline(deadline: BodyDeadline): MiddlewareHandler {
  return async (c, next) => {
    const body = c.req.raw.body;
    if (body !== null) c.req.raw = new Request(c.req.raw, { body: timed(body, deadline), duplex: "half" } as RequestInit);
    await next();
  };
}

function timed(body: ReadableStream<Uint8Array>, { stallMs, totalMs }: BodyDeadline): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let ends = 0;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const now = performance.now();
        ends ||= now + totalMs;
        const wait = Math.min(stallMs, ends - now);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<null>((resolve) => {
          timer = setTimeout(resolve, Math.max(0, wait), null);
        });
        const read = await Promise.race([reader.read(), late]).finally(() => clearTimeout(timer));
        if (read === null) {
          reader.cancel().catch(() => {});
          const why = wait < stallMs ? `did not arrive within ${totalMs / 1000} s` : `stalled: no data for ${stallMs / 1000} s`;
          controller.error(new BodyTimeout(`the request body ${why}`));
        } else if (read.done) controller.close();
        else controller.enqueue(read.value);
      },
      cancel: (reason) => reader.cancel(reason),
    },
    { highWaterMark: 0 },
  );
}

const JSON_TYPE = /^application\/json\b/i;
const UTF8 = new TextDecoder("utf-8", { fatal: true });
/** A path is echoed in an answer at most this long (a key may be as long as the body). */
const PATH_ECHO = 200;
const echoPath = (path: string) => (path.length > PATH_ECHO ? `${path.slice(0, PATH_ECHO)}...` : path);

/**
 * Reads a JSON body once (through the deadline and bodyLimit before it) and checks it before
 * anything parses it, in time and memory linear in its size: it must be UTF-8 (else 400
 * `malformed_json`, never decoded to U+FFFD), nest at most MAX_JSON_DEPTH deep (else 400
 * `too_deep`, naming where), and repeat no key within an object (else 400 `duplicate_key`
 * naming it: JSON.parse would keep the last, so the body would mean something other than it
 * says). The text and its parse are left in Hono's body cache for the validator; a body that is
 * not JSON is left to it, which answers `malformed_json` where the route takes a body.
 */
export const checkedJsonBody: MiddlewareHandler = async (c, next) => {
  if (c.req.raw.body === null || !JSON_TYPE.test(c.req.header("content-type") ?? "")) return next();
  const bytes = await c.req.raw.arrayBuffer();
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    return c.json(errorBody("malformed_json", "the body is not valid UTF-8"), 400);
  }
  const found = scanJson(text);
  if (found?.kind === "duplicate_key") {
    const key = echoPath(found.path);
    return c.json(errorBody("duplicate_key", `${key}: appears twice in one object; send each key once`, key), 400);
  }
  if (found?.kind === "too_deep") {
    const at = echoPath(found.path);
    return c.json(
      errorBody(
        "too_deep",
        `the body nests objects and arrays deeper than ${MAX_JSON_DEPTH} levels${at ? ` (at ${at})` : ""}`,
        at || undefined,
      ),
      400,
    );
  }
  // Hono keeps the promises of what it read (its type says the values).
  const cache = c.req.bodyCache as Record<string, Promise<unknown>>;
  cache.text = Promise.resolve(text);
  try {
    cache.json = Promise.resolve(JSON.parse(text));
  } catch {
    // Not JSON: the validator parses the text again and answers malformed_json.
  }
  await next();
};

/**
 * Browser hardening on every answer (Hono's secureHeaders): `X-Content-Type-Options: nosniff`,
 * `X-Frame-Options: DENY` and `Content-Security-Policy: frame-ancestors 'none'` (nothing may frame
 * the shop), `Referrer-Policy: no-referrer`, `Cross-Origin-Resource-Policy` and `-Opener-Policy:
 * same-origin`. A route that sets its own
 * Content-Security-Policy (the live page's, stricter) keeps it. No Strict-Transport-Security: the
 * services speak plain HTTP; HSTS belongs to whatever terminates TLS in front of them.
 */
export const hardeningHeaders: MiddlewareHandler = secureHeaders({
  contentSecurityPolicy: { frameAncestors: ["'none'"] },
  xFrameOptions: "DENY",
  strictTransportSecurity: false,
  // Headers for browsers long gone (IE's download and XSS filters, Flash, DNS prefetch): not sent.
  xDownloadOptions: false,
  xXssProtection: false,
  xPermittedCrossDomainPolicies: false,
  xDnsPrefetchControl: false,
  originAgentCluster: false,
  overwrite: false,
});

/**
 * A HEAD answer carries the Content-Length its GET would have had (Hono answers HEAD by running
 * GET and dropping the body; without this Bun says `Content-Length: 0`). Streams (the live event
 * stream) have no length and are left alone.
 */
export const headLength: MiddlewareHandler = async (c, next) => {
  await next();
  if (c.req.method !== "HEAD" || c.res.body === null || c.res.headers.has("content-length")) return;
  if ((c.res.headers.get("content-type") ?? "").startsWith("text/event-stream")) return;
  const bytes = await c.res.arrayBuffer();
  const headers = new Headers(c.res.headers);
  headers.set("content-length", String(bytes.byteLength));
  c.res = new Response(null, { status: c.res.status, statusText: c.res.statusText, headers });
};
