/**
 * The HTTP side of `Idempotency-Key` (storage: src/idempotency/store.ts): the header's schema
 * and description, the `Idempotent-Replayed` response header, the documented 422, and the replay
 * of a stored answer. One wording for every keyed write, so the routes say the same thing.
 */
import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { declaredErrors } from "../http/schemas";
import { AlreadyAnswered, IDEMPOTENCY_ERRORS, IDEMPOTENCY_HEADER, type StoredAnswer } from "./store";

/** The response header that marks an answer given earlier. */
const REPLAYED_HEADER = "Idempotent-Replayed";

/** What a keyed write does, in words for its header's description. */
export interface KeyedWrite {
  /** What the first request with a key does: "places the order". */
  does: string;
  /** What a repeat does instead: "places nothing". */
  repeat: string;
  /** What the key does once pruned: "places a new order". */
  afterRetention: string;
  /** Where the retention is set: "registry's `idempotency_key_retention_hours`". */
  setting: string;
}

/** 1 to 255 visible ASCII characters (0x21-0x7E: no space, control character or anything past ASCII). */
const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

/** The `headers` of a keyed write's request: an optional `Idempotency-Key`, described for `write`. */
export const idempotencyKeyHeaders = (write: KeyedWrite) =>
  z.object({
    [IDEMPOTENCY_HEADER]: z
      .string()
      .regex(KEY_PATTERN, "expected 1 to 255 visible ASCII characters")
      .optional()
      .openapi({
        description:
          `Makes retries safe: the first request with a key ${write.does}; the same key with the same path and body ` +
          "(also while the first is in flight) answers that first answer again, with `Idempotent-Replayed: true`, " +
          `and ${write.repeat}; the same key with another path or body is refused (422 \`idempotency_key_reused\`). ` +
          `A request that fails keeps no key. Keys are kept for ${write.setting} (default 24 h); after that the key ${write.afterRetention}.`,
        example: "0f8fad5b-d9cb-469f-a165-70867728950e",
      }),
  });

/** The `Idempotent-Replayed` header of a keyed write's success response; `repeat` says what a replay did not do. */
export const replayedHeader = (repeat: string) => ({
  [REPLAYED_HEADER]: {
    description: `\`true\` when this is the answer first given for the same Idempotency-Key (${repeat}); absent otherwise`,
    schema: { type: "string" as const, enum: ["true"] },
  },
});

/** The 422 a keyed write documents (withErrors' route errors). */
export const KEY_REUSED = declaredErrors(IDEMPOTENCY_ERRORS, "idempotency_key_reused");

/** The answer stored for a key, sent again with `Idempotent-Replayed: true` and `headers`. */
export function replay(c: Context, answer: StoredAnswer, headers: Record<string, string> = {}): Response {
  return c.body(JSON.stringify(answer.body), answer.statusCode as ContentfulStatusCode, {
    "content-type": "application/json",
    ...headers,
    [REPLAYED_HEADER]: "true",
  });
}

/** For a handler's catch: replays the answer of AlreadyAnswered (with `headers`), rethrows anything else. */
export function replayIfAnswered(c: Context, err: unknown, headers: Record<string, string> = {}): Response {
  if (err instanceof AlreadyAnswered) return replay(c, err.answer, headers);
  throw err;
}
