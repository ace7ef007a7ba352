/** One error shape for every service: `{ error: { code, message, field? } }`. */
import type { Hook } from "@hono/zod-openapi";
import { z } from "@hono/zod-openapi";
import type { Context, Env } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { isConnectionError } from "../db/database";
import { DomainError, type ErrorKind } from "../errors";
import type { Logger } from "../log";

/** The JSON error body (any code); each route documents its own codes (errorContent). */
const ErrorBodySchema = z.object({
  error: z.object({
    code: z.string().openapi({ example: "invalid_request" }),
    message: z.string(),
    field: z.string().optional().openapi({ example: "items.0.quantity" }),
  }),
});
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

/** The statuses an error body can come with. */
export type ErrorStatus = 400 | 401 | 404 | 408 | 409 | 413 | 415 | 422 | 500 | 503;

/** A request body stopped arriving (src/http/guards.ts, bodyDeadline): answered 408 `request_timeout`. */
export class BodyTimeout extends Error {
  override readonly name = "BodyTimeout";
}

/** One error code a route can answer: when it is given, and a message and field as the API writes them. */
export interface ErrorCase {
  when: string;
  message: string;
  field?: string;
}

/** The codes the HTTP shell itself gives (validation, token, body checks, readiness, outages), with real messages. */
export const SHELL_ERRORS = {
  invalid_request: {
    when: "a parameter, header or body field is missing or invalid (`field` names it)",
    message: "items.0.quantity: Too small: expected number to be >0",
    field: "items.0.quantity",
  },
  malformed_json: { when: "the body is not JSON in UTF-8 (or is empty)", message: "Malformed JSON in request body" },
  too_deep: {
    when: "objects and arrays in the JSON body nest deeper than 32 levels (`field` says where); refused before it is parsed",
    message: "the body nests objects and arrays deeper than 32 levels (at a.a.a)",
    field: "a.a.a",
  },
  duplicate_key: {
    when: "a key appears twice in one object of the JSON body (`field` names it); JSON.parse would keep the last one",
    message: "user_id: appears twice in one object; send each key once",
    field: "user_id",
  },
  request_timeout: {
    when: "the body stopped arriving (no data for 5 s, or not all of it within 30 s); the connection is closed",
    message: "the request body stalled: no data for 5 s",
  },
  unauthorized: {
    when: "no `Authorization: Bearer <admin token>`, or another token",
    message: "send Authorization: Bearer <admin token>",
  },
  payload_too_large: { when: "the body is over BODY_LIMIT_BYTES (1 MiB by default)", message: "request body is over 1048576 bytes" },
  unsupported_media_type: {
    when: "the body is not `application/json` in UTF-8 (another media type or charset), or has a `Content-Encoding` (gzip, ...)",
    message: "send the body as application/json in UTF-8",
  },
  not_ready: {
    when: "the service is starting or stopping (consumer groups not joined yet); writes are refused, reads go through. Retry after `Retry-After` seconds",
    message: "the service is not ready (starting: consumer groups joining); retry shortly",
  },
  unavailable: {
    when: "the database cannot be reached; retry after `Retry-After` seconds",
    message: "the service is temporarily unavailable",
  },
  internal_error: { when: "a bug; the details are in the service's log, never in the answer", message: "internal error" },
} satisfies Record<string, ErrorCase>;

/** The status of a DomainError of each kind (and of its documented response). */
export const KIND_STATUS = {
  invalid: 422,
  not_found: 404,
  conflict: 409,
  unavailable: 503,
} as const satisfies Record<ErrorKind, ErrorStatus>;

const STATUS_TEXT: Record<ErrorStatus, string> = {
  400: "Bad request",
  401: "Missing or wrong admin token",
  404: "Not found",
  408: "The request body did not arrive in time",
  409: "Conflict with the current state",
  413: "Body too large",
  415: "Unsupported media type",
  422: "The request names something that cannot be used",
  500: "Internal error",
  503: "Temporarily unavailable",
};

/** The JSON schema of an error body whose `code` is one of `codes`. */
export function errorSchema(codes: string[]) {
  return {
    type: "object" as const,
    description: "The one error shape of every service",
    required: ["error"],
    additionalProperties: false,
    properties: {
      error: {
        type: "object" as const,
        description: "What went wrong",
        required: ["code", "message"],
        additionalProperties: false,
        properties: {
          code: {
            type: "string" as const,
            enum: codes,
            description: "Stable, machine-readable reason; the route lists every code it can give",
          },
          message: { type: "string" as const, description: "What went wrong, for a person; wording may change" },
          field: {
            type: "string" as const,
            description:
              "The field, parameter or header at fault (a dotted path into the body, e.g. `items.0.quantity`), when there is one",
          },
        },
      },
    },
  };
}

/** A documented error response of `status`: code enum, one example per code, the codes explained, headers the shell sets. */
export function errorContent(status: ErrorStatus, cases: Record<string, ErrorCase>) {
  const codes = Object.keys(cases);
  const lines = Object.entries(cases).map(([code, c]) => `\`${code}\`: ${c.when}`);
  const examples = Object.fromEntries(
    Object.entries(cases).map(([code, c]) => [
      code,
      { summary: c.when.split(/[.;(]/)[0]?.trim() ?? code, value: errorBody(code, c.message, c.field) },
    ]),
  );
  const headers =
    status === 503
      ? { "Retry-After": { description: "Seconds to wait before retrying", schema: { type: "integer" as const, minimum: 1, example: 1 } } }
      : status === 401
        ? {
            "WWW-Authenticate": {
              description: "The scheme to use",
              schema: { type: "string" as const, example: 'Bearer realm="shop admin"' },
            },
          }
        : undefined;
  return {
    description: `${STATUS_TEXT[status]}. ${lines.join("; ")}.`,
    ...(headers ? { headers } : {}),
    content: { "application/json": { schema: errorSchema(codes), examples } },
  };
}

const WRITE_METHODS = ["post", "put", "patch", "delete"];
const ALL_METHODS = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];

/**
 * For routes that did not document them with `withErrors`: adds to every operation of an OpenAPI
 * document the 500 the shell can always give, and 503 `not_ready` to every write.
 */
export function documentShellErrors<D extends object>(document: D): D {
  const doc = document as { paths?: Record<string, Record<string, { responses?: Record<string, unknown> } | undefined>> };
  const paths: Record<string, Record<string, unknown>> = {};
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    const out: Record<string, unknown> = { ...item };
    for (const method of ALL_METHODS) {
      const op = item[method];
      if (!op) continue;
      const responses = { ...op.responses };
      responses["500"] ??= errorContent(500, { internal_error: SHELL_ERRORS.internal_error });
      if (WRITE_METHODS.includes(method)) responses["503"] ??= errorContent(503, { not_ready: SHELL_ERRORS.not_ready });
      out[method] = { ...op, responses };
    }
    paths[path] = out;
  }
  return { ...document, paths };
}

/** Builds an error body. */
export const errorBody = (code: string, message: string, field?: string): ErrorBody => ({
  error: field === undefined ? { code, message } : { code, message, field },
});

/** zod-openapi hook: a request that fails validation gets 400 naming the first bad field. */
export const validationHook: Hook<unknown, Env, string, unknown> = (result, c) => {
  if (result.success) return;
  const issue = result.error.issues[0];
  // An unknown key is named by its own path, not its object's.
  const path = issue?.code === "unrecognized_keys" ? [...issue.path, issue.keys[0] ?? ""] : (issue?.path ?? []);
  const field = path.join(".") || result.target;
  const message = issue ? `${field}: ${issue.message}` : "invalid request";
  return c.json(errorBody("invalid_request", message, field), 400);
};

/** Seconds a 503 `unavailable` asks the client to wait (Retry-After). */
const UNAVAILABLE_RETRY_AFTER_S = 1;

/**
 * The status counted and logged for a request whose client closed the connection before its
 * body was read (nginx's 499 "client closed request"): no answer reaches anyone, and it is not
 * a server error.
 */
const CLIENT_CLOSED = 499 as ContentfulStatusCode;

/** Whether `err` is Bun's "The connection was closed." from reading the body of a request whose client left. */
function clientGone(err: Error, c: Context): boolean {
  return err.name === "AbortError" && (c.req.raw.signal.aborted || /connection was closed/i.test(err.message));
}

/** Maps anything thrown by a handler to the error shape; never leaks internals. */
export function errorHandler(log: Logger) {
  return (err: Error, c: Context): Response => {
    if (err instanceof DomainError) {
      if (err.kind === "unavailable") c.header("retry-after", String(UNAVAILABLE_RETRY_AFTER_S));
      return c.json(errorBody(err.code, err.message, err.field), KIND_STATUS[err.kind]);
    }
    if (err instanceof BodyTimeout) return c.json(errorBody("request_timeout", err.message), 408, { connection: "close" });
    if (err instanceof HTTPException) {
      const status = err.status;
      if (status === 413) return c.json(errorBody("payload_too_large", "request body is too large"), 413);
      if (status === 415) return c.json(errorBody("unsupported_media_type", "send the body as application/json in UTF-8"), 415);
      const code = /json/i.test(err.message) ? "malformed_json" : "bad_request";
      return c.json(errorBody(code, err.message || "bad request"), status);
    }
    if (isConnectionError(err)) {
      log.warn("database unavailable", { path: c.req.path, err });
      return c.json(errorBody("unavailable", "the service is temporarily unavailable"), 503, {
        "retry-after": String(UNAVAILABLE_RETRY_AFTER_S),
      });
    }
    if (clientGone(err, c)) {
      // Nobody reads this answer; it is counted and logged as the client's doing, not the server's.
      return c.json(errorBody("client_closed", "the client closed the connection before the request was read"), CLIENT_CLOSED);
    }
    log.error("unhandled error", { method: c.req.method, path: c.req.path, err, stack: err.stack });
    return c.json(errorBody("internal_error", "internal error"), 500);
  };
}
