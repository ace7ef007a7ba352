/**
 * `Idempotency-Key` for `POST /orders`: the shared key store (src/idempotency) over
 * registry's own table, which also links each key to the order it placed. The first request
 * with a key stores its answer in the order's own transaction; the same key and body again get
 * that answer back and create nothing; the same key with another body is refused. Keys are kept
 * `idempotency_key_retention_hours`, then pruned: a key seen again after that places a new order.
 */
import type { Database, Executor } from "../../src/db/database";
import { type PruneJob, pruneOlderThan } from "../../src/db/retention";
import type { KeyedRequest, StoredAnswer } from "../../src/idempotency";
import * as keys from "../../src/idempotency";
import { idempotencyKeys } from "./schema";

export { AlreadyAnswered, IDEMPOTENCY_HEADER, type KeyedRequest, type StoredAnswer } from "../../src/idempotency";

/** sha-256 (hex) of the validated body in a canonical form: the user, then the items in the given order. */
export const requestHash = (userId: number, items: readonly { product_id: number; quantity: number }[]): string =>
  keys.hashRequest([userId, items.map((i) => [i.product_id, i.quantity])]);

/** The stored answer for `req.key`, null if none; throws idempotency_key_reused. */
export const findAnswer = (db: Database, req: KeyedRequest) => keys.findAnswer(db, idempotencyKeys, req);

/** Claims `req.key` in `tx` before the order is written; throws AlreadyAnswered or idempotency_key_reused (keys.claimKey). */
export const claimKey = (tx: Executor, req: KeyedRequest) => keys.claimKey(tx, idempotencyKeys, req);

/** Stores the answer for a key claimed in `tx`, with the order it placed. */
export const recordAnswer = (tx: Executor, req: KeyedRequest, orderId: string, answer: StoredAnswer) =>
  keys.recordAnswer(tx, idempotencyKeys, req, answer, { orderId });

/** The pruning job for keys older than `retentionMs` (registry's messaging runs it with its own retention). */
export const idempotencyKeyPruneJob = (retentionMs: number): PruneJob => keys.idempotencyKeyPruneJob(idempotencyKeys, retentionMs);

/** Deletes keys older than `retentionMs` (database clock) in bounded batches; returns how many. */
export const pruneIdempotencyKeys = (db: Database, retentionMs: number): Promise<number> =>
  pruneOlderThan(db, idempotencyKeyPruneJob(retentionMs));
