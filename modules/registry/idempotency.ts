/**
 * `Idempotency-Key` for `POST /orders` (as Stripe's header, eShop's x-requestid): the first
 * request with a key stores its answer in the order's own transaction; the same key and body
 * again get that answer back and create nothing; the same key with another body is refused.
 * Keys are kept `idempotency_key_retention_hours`, then pruned: a key seen again after that
 * places a new order.
 */
import { createHash } from "node:crypto";
import { eq } from "drizzle-orm";
import type { Database, Db } from "../../src/db/database";
import { invalid } from "../../src/errors";
import { type PruneJob, pruneOlderThan } from "../../src/outbox/retention";
import { idempotencyKeys } from "./schema";

/** The request header that names a request. */
export const IDEMPOTENCY_HEADER = "Idempotency-Key";
/** The response header that marks an answer given earlier. */
export const REPLAYED_HEADER = "Idempotent-Replayed";

/** A keyed request: the client's key and a hash of what it asked for. */
export interface KeyedRequest {
  key: string;
  hash: string;
}

/** The answer first given for a key. */
export interface StoredAnswer {
  statusCode: number;
  body: unknown;
}

/** Thrown inside the order's transaction when its key was answered already: nothing is written, the answer is replayed. */
export class AlreadyAnswered extends Error {
  override readonly name = "AlreadyAnswered";
  constructor(readonly answer: StoredAnswer) {
    super("idempotency key already answered");
  }
}

/** sha-256 (hex) of the validated body in a canonical form: the user, then the items in the given order. */
export function requestHash(userId: number, items: readonly { product_id: number; quantity: number }[]): string {
  const canonical = JSON.stringify([userId, items.map((i) => [i.product_id, i.quantity])]);
  return createHash("sha256").update(canonical).digest("hex");
}

type KeyRow = Pick<typeof idempotencyKeys.$inferSelect, "requestHash" | "statusCode" | "response">;
const answerColumns = {
  requestHash: idempotencyKeys.requestHash,
  statusCode: idempotencyKeys.statusCode,
  response: idempotencyKeys.response,
};

/** The earlier answer for `row`'s key, or idempotency_key_reused (422) if it answered another body. */
function replayOf(row: KeyRow, req: KeyedRequest): StoredAnswer {
  if (row.requestHash !== req.hash) {
    throw invalid(
      "idempotency_key_reused",
      `this ${IDEMPOTENCY_HEADER} was used with another request body; send a new key for a new order`,
      IDEMPOTENCY_HEADER,
    );
  }
  return { statusCode: row.statusCode, body: row.response };
}

/** The stored answer for `req.key` (one primary-key read), null if none; throws idempotency_key_reused. */
export async function findAnswer(db: Database, req: KeyedRequest): Promise<StoredAnswer | null> {
  const [row] = await db.read((q) => q.select(answerColumns).from(idempotencyKeys).where(eq(idempotencyKeys.key, req.key)));
  return row ? replayOf(row, req) : null;
}

/**
 * Claims `req.key` in `tx` before the order is written; throws AlreadyAnswered (or
 * idempotency_key_reused) if it is taken. On PostgreSQL (read committed) the insert waits for
 * a concurrent transaction that inserted the same key: if that one commits, the insert does
 * nothing and the next statement, with a fresh snapshot, reads its row; if it rolls back, this
 * insert wins. PGlite runs one transaction at a time, so the row is simply there or not.
 */
export async function claimKey(tx: Db, req: KeyedRequest): Promise<void> {
  // Twice at most: the holder's row can only vanish if it was pruned in between.
  for (let attempt = 0; attempt < 2; attempt++) {
    const claimed = await tx
      .insert(idempotencyKeys)
      .values({ key: req.key, requestHash: req.hash, statusCode: 0, response: {} })
      .onConflictDoNothing()
      .returning({ key: idempotencyKeys.key });
    if (claimed.length > 0) return;
    const [row] = await tx.select(answerColumns).from(idempotencyKeys).where(eq(idempotencyKeys.key, req.key));
    if (row) throw new AlreadyAnswered(replayOf(row, req));
  }
  throw new Error(`idempotency key could not be claimed`);
}

/** Stores the answer for a key claimed in `tx` (visible to others only once `tx` commits). */
export async function recordAnswer(tx: Db, req: KeyedRequest, orderId: string, answer: StoredAnswer): Promise<void> {
  await tx
    .update(idempotencyKeys)
    .set({ statusCode: answer.statusCode, response: answer.body, orderId })
    .where(eq(idempotencyKeys.key, req.key));
}

/** The pruning job for keys older than `retentionMs` (registry's messaging runs it with its own retention). */
export const idempotencyKeyPruneJob = (retentionMs: number): PruneJob => ({
  name: "idempotency_keys",
  table: idempotencyKeys,
  key: idempotencyKeys.key,
  at: idempotencyKeys.createdAt,
  olderThanMs: retentionMs,
});

/** Deletes keys older than `retentionMs` (database clock) in bounded batches; returns how many. */
export const pruneIdempotencyKeys = (db: Database, retentionMs: number): Promise<number> =>
  pruneOlderThan(db, idempotencyKeyPruneJob(retentionMs));
