/** Request and response pieces that every module's routes share. */
import { z } from "@hono/zod-openapi";
import { ErrorBodySchema } from "./errors";

/** A positive 32-bit id in a JSON body. */
export const Id = z.number().int().positive().max(2_147_483_647);

/** A positive 32-bit id in a path or query string. */
export const IdParam = z.coerce.number().pipe(Id);

/** An amount of money in cents in a request body: positive, bounded. */
export const AmountCents = z.number().int().positive().max(100_000_000_000);

/** A JSON response entry for a route. */
export const json = <S extends z.ZodType>(schema: S, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

/** The error responses a route can give, by status. */
export const errors = (...statuses: (400 | 404 | 409 | 413 | 422 | 503)[]) =>
  Object.fromEntries(statuses.map((s) => [s, json(ErrorBodySchema, ERROR_TEXT[s])])) as Record<
    number,
    ReturnType<typeof json<typeof ErrorBodySchema>>
  >;

const ERROR_TEXT = {
  400: "Malformed or invalid request",
  404: "Not found",
  409: "Conflict",
  413: "Body too large",
  422: "Request names something that cannot be used",
  503: "Temporarily unavailable",
} as const;
