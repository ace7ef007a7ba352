/** Every module's admin routes over its messaging tables: dead letters, and their redrive. */
import { createRoute, z } from "@hono/zod-openapi";
import { createRouter } from "../http/router";
import { declaredErrors, intParam, json, withErrors } from "../http/schemas";
import { DEAD_LETTER_ERRORS, DEAD_LETTER_FILTERS, listDeadLetters, type Redriver, redriveDeadLetter } from "./dead-letters";

const DeadLetter = z
  .object({
    id: z.number().int().describe("Dead letter id"),
    state: z.enum(["dead", "resolved"]).describe("`dead` until a redrive applies it (or finds it applied), then `resolved`"),
    topic: z.string().describe("The topic it came from"),
    key: z.string().describe("The record's key (the order id)"),
    value: z.string().openapi({ description: "The record's value as received (cut at 100 000 characters)" }),
    headers: z.record(z.string(), z.string()).describe("The record's headers"),
    error: z.string().openapi({ description: "Why it was set aside, or why its last redrive failed" }),
    received_at: z.string().describe("When it was set aside"),
    redrives: z.number().int().openapi({ description: "Times it was fed back through the consumer" }),
    last_redrive_at: z.string().nullable().describe("When it was last redriven; null if never"),
    resolved_at: z.string().nullable().openapi({ description: "When a redrive applied it, or found it applied already" }),
  })
  .describe("A record a consumer set aside")
  .openapi("DeadLetter");

/** A real dead letter: an OrderCreated whose payload failed validation, later fixed upstream and redriven. */
const DEAD_LETTER_EXAMPLE = {
  id: 17,
  state: "dead" as const,
  topic: "new_orders",
  key: "3f6c1a52-8d4e-4b8e-9a57-2c1d0e9b7a41",
  value:
    '{"id":"6a1f0c3e-2b7d-4e59-8f1a-9c0d3b2e7a64","type":"OrderCreated","version":1,"occurred_at":"2026-03-14T09:26:53.590Z",' +
    '"order_id":"3f6c1a52-8d4e-4b8e-9a57-2c1d0e9b7a41","payload":{"order_id":"3f6c1a52-8d4e-4b8e-9a57-2c1d0e9b7a41","user_id":1,"items":[],"total":0}}',
  headers: { "message-id": "6a1f0c3e-2b7d-4e59-8f1a-9c0d3b2e7a64", "message-type": "OrderCreated" },
  error: "payload.items: Too small: expected array to have >=1 items",
  received_at: "2026-03-14T09:26:53.612Z",
  redrives: 0,
  last_redrive_at: null,
  resolved_at: null,
};

const DeadLetterId = intParam((i) => i.positive().max(Number.MAX_SAFE_INTEGER)).openapi({
  param: { name: "id", in: "path" },
  description: "Dead letter id (decimal digits)",
  example: 1,
});

const listDeadLettersRoute = createRoute(
  withErrors({
    method: "get",
    path: "/admin/dead-letters",
    tags: ["admin"],
    summary: "This service's dead letters, newest first, a page at a time",
    description: "Records its consumers set aside (invalid, unsigned, or whose handler kept failing); pass `next_cursor` back as `cursor`.",
    request: {
      query: z.object({
        state: z.enum(DEAD_LETTER_FILTERS).default("dead").openapi({ description: "dead (not resolved yet), resolved, or all" }),
        limit: intParam((i) => i.min(1).max(100))
          .default(20)
          .openapi({ description: "Dead letters per page, 1 to 100", example: 20 }),
        cursor: intParam((i) => i.positive())
          .optional()
          .openapi({ description: "next_cursor of the previous page", example: 17 }),
      }),
    },
    responses: {
      200: json(
        z.object({
          dead_letters: z.array(DeadLetter).describe("Newest first"),
          next_cursor: z.string().nullable().describe("Pass as `cursor` for the next page; null on the last page"),
        }),
        "A page of dead letters",
        { dead_letters: [DEAD_LETTER_EXAMPLE], next_cursor: null },
      ),
    },
  }),
);

const redriveDeadLetterRoute = createRoute(
  withErrors(
    {
      method: "post",
      path: "/admin/dead-letters/{id}/redrive",
      tags: ["admin"],
      summary: "Feeds a dead letter back through this service's consumer; applied at most once",
      description:
        "200: resolved, with outcome `applied` (the handler ran), `duplicate` (the message was applied already) or " +
        "`ignored` (this service no longer reacts to its type). 422 `invalid_message`: still not a valid message; " +
        '`bad_signature`: its signature is missing or wrong (BUS_SIGNING_KEY, docs/security.md, "Signed records"). ' +
        "409 `redrive_failed`: the handler failed again; `already_resolved`: a redrive resolved it before; " +
        "`redrive_window_passed`: older than the inbox retention. A failed redrive only counts the attempt.",
      request: { params: z.object({ id: DeadLetterId }) },
      responses: {
        200: json(
          z
            .object({
              dead_letter: DeadLetter,
              outcome: z
                .enum(["applied", "duplicate", "ignored"])
                .describe(
                  "`applied`: the handler ran; `duplicate`: it was applied already; `ignored`: this service no longer reacts to its type",
                ),
            })
            .describe("A redriven dead letter and what the redrive did")
            .openapi("Redrive"),
          "The resolved dead letter",
          {
            dead_letter: {
              ...DEAD_LETTER_EXAMPLE,
              state: "resolved",
              redrives: 1,
              last_redrive_at: "2026-03-14T10:02:11.040Z",
              resolved_at: "2026-03-14T10:02:11.040Z",
            },
            outcome: "applied",
          },
        ),
      },
    },
    declaredErrors(DEAD_LETTER_ERRORS, ...DEAD_LETTER_ERRORS.codes),
  ),
);

/** The admin router of one module. */
export function adminRouter(redriver: Redriver) {
  return createRouter()
    .openapi(listDeadLettersRoute, async (c) => c.json(await listDeadLetters(redriver.db, redriver.table, c.req.valid("query")), 200))
    .openapi(redriveDeadLetterRoute, async (c) => c.json(await redriveDeadLetter(redriver, c.req.valid("param").id), 200));
}
