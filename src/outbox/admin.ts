/** Every module's admin routes over its messaging tables: dead letters, and their redrive. */
import { createRoute, z } from "@hono/zod-openapi";
import { intParam, json, withErrors } from "../http/schemas";
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

const DeadLetterId = intParam((i) => i.positive().max(Number.MAX_SAFE_INTEGER)).openapi({
  param: { name: "id", in: "path" },
  description: "Dead letter id (decimal digits)",
  example: 1,
});

export const listDeadLettersRoute = createRoute(withErrors({
  method: "get",
  path: "/admin/dead-letters",
  tags: ["admin"],
  summary: "This service's dead letters, newest first, a page at a time",
  description: "Records its consumers set aside (invalid, unsigned, or whose handler kept failing); pass `next_cursor` back as `cursor`.",
  request: {
    query: z.object({
      state: z.enum(DEAD_LETTER_FILTERS).default("dead").openapi({ description: "dead (not resolved yet), resolved, or all" }),
      limit: intParam((i) => i.min(1).max(100)).default(20).openapi({ description: "Dead letters per page, 1 to 100", example: 20 }),
      cursor: intParam((i) => i.positive()).optional().openapi({ description: "next_cursor of the previous page", example: 17 }),
    }),
  },
  responses: {
    200: json(z.object({ dead_letters: z.array(DeadLetter), next_cursor: z.string().nullable() }), "A page of dead letters"),
  },
}));

export const redriveDeadLetterRoute = createRoute(withErrors({
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
  },
}, {
  404: { unknown_dead_letter: { when: "no dead letter has this id", message: "no dead letter 5", field: "id" } },
  409: {
    redrive_failed: { when: "the handler failed again (the attempt is counted)", message: "the handler failed again: no wallet for user 9" },
    already_resolved: { when: "a redrive resolved it before", message: "dead letter 5 was resolved already" },
    redrive_window_passed: {
      when: "it is older than the inbox retention window",
      message: "dead letter 5 is older than the inbox retention window; it cannot be redriven safely",
    },
  },
  422: {
    invalid_message: { when: "the record is still not a valid message", message: "the record is still not a valid message: payload.order_id: Invalid UUID" },
    bad_signature: { when: "its signature is missing or wrong", message: "the record's signature is missing or wrong: it cannot be redriven" },
  },
}));

/** The admin router of one module. */
export function adminRouter(redriver: Redriver) {
  return createRouter()
    .openapi(listDeadLettersRoute, async (c) => c.json(await listDeadLetters(redriver.db, redriver.table, c.req.valid("query")), 200))
    .openapi(redriveDeadLetterRoute, async (c) => c.json(await redriveDeadLetter(redriver, c.req.valid("param").id), 200));
}
