/** One error shape for every service: `{ error: { code, message, field? } }`. */
import type { Hook } from "@hono/zod-openapi";
import { z } from "@hono/zod-openapi";
import type { Context, Env } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { isConnectionError } from "../db/database";
import { DomainError, type ErrorKind } from "../errors";
import type { Logger } from "../log";

/** The JSON error body, also used in the OpenAPI document. */
export const ErrorBodySchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: "invalid_request" }),
      message: z.string(),
      field: z.string().optional().openapi({ example: "items.0.quantity" }),
    }),
  })
  .openapi("Error");
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

const STATUS: Record<ErrorKind, ContentfulStatusCode> = {
  invalid: 422,
  not_found: 404,
  conflict: 409,
  unavailable: 503,
};

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

/** Maps anything thrown by a handler to the error shape; never leaks internals. */
export function errorHandler(log: Logger) {
  return (err: Error, c: Context): Response => {
    if (err instanceof DomainError) {
      if (err.kind === "unavailable") c.header("retry-after", "1");
      return c.json(errorBody(err.code, err.message, err.field), STATUS[err.kind]);
    }
    if (err instanceof HTTPException) {
      const status = err.status;
      if (status === 413) return c.json(errorBody("payload_too_large", "request body is too large"), 413);
      if (status === 415) return c.json(errorBody("unsupported_media_type", "send the body as application/json in UTF-8"), 415);
      const code = /json/i.test(err.message) ? "malformed_json" : "bad_request";
      return c.json(errorBody(code, err.message || "bad request"), status);
    }
    if (isConnectionError(err)) {
      log.warn("database unavailable", { path: c.req.path, err });
      return c.json(errorBody("unavailable", "the service is temporarily unavailable"), 503);
    }
    log.error("unhandled error", { method: c.req.method, path: c.req.path, err, stack: err.stack });
    return c.json(errorBody("internal_error", "internal error"), 500);
  };
}
