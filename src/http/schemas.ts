/** Request and response pieces that every module's routes share, and the error responses each route documents. */
import { type RouteConfig, z } from "@hono/zod-openapi";
import type { ErrorCodes } from "../errors";
import { ADMIN_PREFIX, needsAdmin } from "./auth";
import { type ErrorCase, type ErrorStatus, errorContent, KIND_STATUS, SHELL_ERRORS } from "./errors";

/** The largest id: ids are positive 32-bit integers. */
const MAX_ID = 2_147_483_647;

/**
 * A positive integer up to `max` in a JSON body. A number past 2^53 fails zod's own safe-integer
 * check first, which would name 9007199254740991; the message names the field's real bound.
 */
export const positiveInt = (max: number) =>
  z
    .int({ error: (issue) => (issue.code === "too_big" ? `Too big: expected number to be <=${max}` : undefined) })
    .positive()
    .max(max);

/** A positive 32-bit id in a JSON body. */
export const Id = positiveInt(MAX_ID);

/** Decimal digits, no sign, exponent, point, spaces or leading zero. */
const DECIMAL = /^(0|[1-9][0-9]*)$/;

/** Message for a path or query integer that is not written in decimal digits. */
const NOT_DECIMAL = "expected an integer written in decimal digits";

/**
 * An integer in a path or query string: decimal digits only (`1e2`, `0x10`, `+7`, `7.0`, ` 7`
 * are 400, not read as another number), then `bounds` (e.g. `i => i.positive().max(9)`).
 * Documented as `type: integer`.
 */
export const intParam = (bounds: (i: z.ZodInt) => z.ZodInt) =>
  z.preprocess(
    (v) => (typeof v === "string" && DECIMAL.test(v) ? Number(v) : v),
    bounds(z.int({ error: (issue) => (issue.code === "invalid_type" ? NOT_DECIMAL : undefined) })),
  );

/** A positive 32-bit id in a path or query string. */
export const IdParam = intParam((i) => i.positive().max(MAX_ID));

/** An amount of money in cents in a request body: positive, bounded. */
export const AmountCents = positiveInt(100_000_000_000);

/** An ISO 8601 timestamp in UTC with milliseconds, as every response writes them. */
export const Timestamp = z.iso.datetime().openapi({ example: "2026-03-14T09:26:53.589Z" });

/** A JSON response entry for a route, with an example that the API really gives. */
export const json = <S extends z.ZodType>(schema: S, description: string, example?: z.input<S>) => ({
  description,
  content: { "application/json": example === undefined ? { schema } : { schema, example } },
});

/** The `Location` header of a 201: where the created resource is read. */
export const locationHeader = (description: string, example: string) => ({
  Location: { description, required: true, schema: { type: "string" as const, format: "uri-reference", example } },
});

/**
 * The codes a route adds to the ones the shell gives, by status: for each code when it is given,
 * and a message and field as the API writes them (the documented example). A code given here for
 * a status the shell also answers (400 `invalid_request`) replaces the shell's example. A module's
 * own codes come from its declaration (declaredErrors), not written here again.
 */
export type RouteErrors = Partial<Record<ErrorStatus, Record<string, ErrorCase>>>;

/**
 * The route errors of declared codes `picked` of `codes` (a module's ErrorCodes), each under the
 * status of its kind, described as declared: what a route answers and what it documents come
 * from the one declaration.
 */
export function declaredErrors<C extends string>(codes: ErrorCodes<C>, ...picked: C[]): RouteErrors {
  const out: RouteErrors = {};
  for (const code of picked) {
    const { kind, when, message, field } = codes.declared[code];
    const status = KIND_STATUS[kind];
    out[status] = { ...out[status], [code]: field === undefined ? { when, message } : { when, message, field } };
  }
  return out;
}

/** What a route's errors depend on besides its own codes. */
export interface ErrorOptions {
  /** Whether the route reads or writes the database (503 `unavailable` during an outage); default true. */
  database?: boolean;
}

const WRITES = new Set(["post", "put", "patch", "delete"]);

/**
 * `config` with every error response it can give, each with `code` as an enum of exactly the
 * codes of that status and one example per code: 400 when it validates anything (`malformed_json`
 * too with a JSON body), 401 for an admin route, 413 and 415 with a JSON body, 503 `not_ready` for
 * a write and `unavailable` with a database, 500 always; plus the route's own `errors` (one
 * RouteErrors, or several merged in order: its wording of the shell's codes, then declaredErrors).
 */
export function withErrors<const R extends RouteConfig>(config: R, errors: RouteErrors | RouteErrors[] = {}, opts: ErrorOptions = {}): R {
  const request = config.request;
  const jsonBody = request?.body?.content?.["application/json"] !== undefined;
  const cases: RouteErrors = {};
  const add = (status: ErrorStatus, code: string, c: ErrorCase) => {
    cases[status] = { ...cases[status], [code]: c };
  };
  if (request?.params || request?.query || request?.headers || jsonBody) add(400, "invalid_request", SHELL_ERRORS.invalid_request);
  if (jsonBody) {
    add(400, "malformed_json", SHELL_ERRORS.malformed_json);
    add(400, "duplicate_key", SHELL_ERRORS.duplicate_key);
    add(400, "too_deep", SHELL_ERRORS.too_deep);
    add(408, "request_timeout", SHELL_ERRORS.request_timeout);
    add(413, "payload_too_large", SHELL_ERRORS.payload_too_large);
    add(415, "unsupported_media_type", SHELL_ERRORS.unsupported_media_type);
  }
  if (needsAdmin(config.security) || config.path === "/admin" || config.path.startsWith(ADMIN_PREFIX)) {
    add(401, "unauthorized", SHELL_ERRORS.unauthorized);
  }
  if (WRITES.has(config.method)) add(503, "not_ready", SHELL_ERRORS.not_ready);
  if (opts.database !== false) add(503, "unavailable", SHELL_ERRORS.unavailable);
  add(500, "internal_error", SHELL_ERRORS.internal_error);
  for (const part of [errors].flat()) {
    for (const [status, codes] of Object.entries(part)) {
      for (const [code, c] of Object.entries(codes ?? {})) add(Number(status) as ErrorStatus, code, c);
    }
  }
  const responses: Record<string, unknown> = { ...config.responses };
  for (const [status, codes] of Object.entries(cases)) responses[status] = errorContent(Number(status) as ErrorStatus, codes ?? {});
  return { ...config, responses } as R;
}

/** The `info` of a service's OpenAPI document: what every route shares. */
export const serviceInfo = (title: string) => ({
  title,
  version: "1.0.0",
  description:
    "Part of the Shop backend: registry (catalogue and orders), wallet (balances) and storage (stock), by default on ports " +
    "8000, 8001 and 8002 (each can run elsewhere: `servers` is where this document came from); " +
    "an order is decided by a saga between them. JSON bodies are `application/json` in UTF-8; ids are positive integers " +
    '(orders: UUIDs); money is integer cents. Every error is `{ "error": { "code", "message", "field"? } }` and each ' +
    "operation lists its codes per status. Any path without a route answers 404 `not_found`; a known path with another " +
    "method answers 405 `method_not_allowed` with `Allow`. Trailing slashes are accepted. A malformed `Host` header " +
    "answers 400 `bad_host` on every path.",
});
