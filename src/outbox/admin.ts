/** Every module's admin routes over its messaging tables: dead letters, and their redrive. */
import { createRoute, z } from "@hono/zod-openapi";
import { errors, json } from "../http/schemas";
import { createRouter } from "../http/router";
import { DEAD_LETTER_FILTERS, listDeadLetters, type Redriver, redriveDeadLetter } from "./dead-letters";

const DeadLetter = z
  .object({
    id: z.number().int(),
    state: z.enum(["dead", "resolved"]),
    topic: z.string(),
    key: z.string(),
    value: z.string().openapi({ description: "The record's value as received (cut at 100 000 characters)" }),
    headers: z.record(z.string(), z.string()),
    error: z.string().openapi({ description: "Why it was set aside, or why its last redrive failed" }),
    received_at: z.string(),
    redrives: z.number().int().openapi({ description: "Times it was fed back through the consumer" }),
    last_redrive_at: z.string().nullable(),
    resolved_at: z.string().nullable().openapi({ description: "When a redrive applied it, or found it applied already" }),
  })
  .openapi("DeadLetter");

const DeadLetterId = z.coerce
  .number()
  .int()
  .positive()
  .max(Number.MAX_SAFE_INTEGER)
  .openapi({ param: { name: "id", in: "path" }, example: 1 });

export const listDeadLettersRoute = createRoute({
  method: "get",
  path: "/admin/dead-letters",
  tags: ["admin"],
  summary: "This service's dead letters, newest first, a page at a time",
  request: {
    query: z.object({
      state: z.enum(DEAD_LETTER_FILTERS).default("dead").openapi({ description: "dead (not resolved yet), resolved, or all" }),
      limit: z.coerce.number().int().min(1).max(100).default(20),
      cursor: z.coerce.number().int().positive().optional().openapi({ description: "next_cursor of the previous page" }),
    }),
  },
  responses: {
    200: json(z.object({ dead_letters: z.array(DeadLetter), next_cursor: z.string().nullable() }), "A page of dead letters"),
    ...errors(400),
  },
});

export const redriveDeadLetterRoute = createRoute({
  method: "post",
  path: "/admin/dead-letters/{id}/redrive",
  tags: ["admin"],
  summary: "Feeds a dead letter back through this service's consumer; applied at most once",
  description:
    "200: resolved, with outcome `applied` (the handler ran), `duplicate` (the message was applied already) or " +
    "`ignored` (this service no longer reacts to its type). 422 `invalid_message`: still not a valid message; " +
    "`bad_signature`: its signature is missing or wrong (BUS_SIGNING_KEY, README \"Signed records\"). " +
    "409 `redrive_failed`: the handler failed again; `already_resolved`: a redrive resolved it before; " +
    "`redrive_window_passed`: older than the inbox retention. A failed redrive only counts the attempt.",
  request: { params: z.object({ id: DeadLetterId }) },
  responses: {
    200: json(
      z.object({ dead_letter: DeadLetter, outcome: z.enum(["applied", "duplicate", "ignored"]) }).openapi("Redrive"),
      "The resolved dead letter",
    ),
    ...errors(400, 404, 409, 422, 503),
  },
});

/** The admin router of one module. */
export function adminRouter(redriver: Redriver) {
  return createRouter()
    .openapi(listDeadLettersRoute, async (c) => c.json(await listDeadLetters(redriver.db, redriver.table, c.req.valid("query")), 200))
    .openapi(redriveDeadLetterRoute, async (c) => c.json(await redriveDeadLetter(redriver, c.req.valid("param").id), 200));
}
