/**
 * `Idempotency-Key` storage any module can keep in its own schema (as Stripe's header, eShop's
 * x-requestid): a write claims its key in its own transaction, does its work, and stores its
 * answer there too, so a key is never answered without its effect nor the reverse. The same key
 * and body again get that answer back and change nothing; the same key with another body is
 * refused. Keys are pruned after a retention window (the HTTP side is src/idempotency/http.ts;
 * modules use both through src/idempotency/index.ts).
 */
import { createHash } from "node:crypto";
import { eq } from "drizzle-orm";
import {
  index,
  integer,
  json,
  type PgColumn,
  type PgColumnBuilderBase,
  type PgSchema,
  type PgTable,
  text,
  timestamp,
} from "drizzle-orm/pg-core";
import { z } from "zod";
import type { Database, Executor } from "../db/database";
import type { PruneJob } from "../db/retention";
import { declareErrors, InvariantError } from "../errors";

/** The request header that names a request. */
export const IDEMPOTENCY_HEADER = "Idempotency-Key";

/** The message of 422 `idempotency_key_reused`. */
const KEY_REUSED_MESSAGE = `this ${IDEMPOTENCY_HEADER} was used with another request (path or body); send a new key for a new request`;

/** The one error code a keyed write adds (every keyed route documents it: src/idempotency/http.ts). */
export const IDEMPOTENCY_ERRORS = declareErrors("idempotency keys", {
  idempotency_key_reused: {
    kind: "invalid",
    when: "the Idempotency-Key was used with another path or body",
    message: KEY_REUSED_MESSAGE,
    field: IDEMPOTENCY_HEADER,
  },
});

/** How long a module remembers a key, in hours: its `idempotency_key_retention_hours` setting. */
export const IdempotencyKeyRetentionHours = z.coerce.number().positive().max(8760).default(24);

/**
 * Declares `idempotency_keys` inside `schema`; `extra` columns (nullable) link a key to what it
 * made, e.g. registry's `order_id`.
 */
export function idempotencyKeysTable<E extends Record<string, PgColumnBuilderBase> = Record<never, never>>(schema: PgSchema, extra?: E) {
  return schema.table(
    "idempotency_keys",
    {
      key: text("key").primaryKey(),
      /** sha-256 of the request in a canonical form, to refuse a reused key with another body. */
      requestHash: text("request_hash").notNull(),
      /** 0 while claimed by an uncommitted transaction (nobody else can see it then). */
      statusCode: integer("status_code").notNull(),
      // json, not jsonb: the text is kept as written, so a replay gives the fields in the first answer's order.
      response: json("response").notNull(),
      ...(extra as E),
      createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    },
    // Pruned by age.
    (t) => [index("idempotency_keys_created").on(t.createdAt)],
  );
}

/** Any module's idempotency_keys table (with or without extra columns). */
export type IdempotencyKeysTable = PgTable & Record<"key" | "requestHash" | "statusCode" | "response" | "createdAt", PgColumn>;

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

/** Thrown inside a keyed transaction when its key was answered already: nothing is written, the answer is replayed. */
export class AlreadyAnswered extends Error {
  override readonly name = "AlreadyAnswered";
  constructor(readonly answer: StoredAnswer) {
    super("idempotency key already answered");
  }
}

/** sha-256 (hex) of `canonical` (the validated request, path and body, as arrays in a fixed order) as JSON. */
export function hashRequest(canonical: unknown): string {
  return createHash("sha256").update(JSON.stringify(canonical)).digest("hex");
}

/** The keyed request for header value `key` and the request `canonical`; undefined without a key. */
export const keyedRequest = (key: string | undefined, canonical: unknown): KeyedRequest | undefined =>
  key === undefined ? undefined : { key, hash: hashRequest(canonical) };

type KeyRow = { requestHash: unknown; statusCode: unknown; response: unknown };
const answerColumns = (table: IdempotencyKeysTable) => ({
  requestHash: table.requestHash,
  statusCode: table.statusCode,
  response: table.response,
});

/** The earlier answer for `row`'s key, or idempotency_key_reused (422) if it answered another body. */
function replayOf(row: KeyRow, req: KeyedRequest): StoredAnswer {
  if (row.requestHash !== req.hash) {
    throw IDEMPOTENCY_ERRORS.error("idempotency_key_reused", KEY_REUSED_MESSAGE, IDEMPOTENCY_HEADER);
  }
  return { statusCode: Number(row.statusCode), body: row.response };
}

/** The stored answer for `req.key` (one primary-key read), null if none; throws idempotency_key_reused. */
export async function findAnswer(db: Database, table: IdempotencyKeysTable, req: KeyedRequest): Promise<StoredAnswer | null> {
  const [row] = await db.read((q) => q.select(answerColumns(table)).from(table).where(eq(table.key, req.key)));
  return row ? replayOf(row, req) : null;
}

/**
 * Claims `req.key` in `tx` before the write it names; throws AlreadyAnswered (or
 * idempotency_key_reused) if it is taken. On PostgreSQL (read committed) the insert waits for
 * a concurrent transaction that inserted the same key: if that one commits, the insert does
 * nothing and the next statement, with a fresh snapshot, reads its row; if it rolls back, this
 * insert wins. PGlite runs one transaction at a time, so the row is simply there or not.
 */
export async function claimKey(tx: Executor, table: IdempotencyKeysTable, req: KeyedRequest): Promise<void> {
  // Twice at most: the holder's row can only vanish if it was pruned in between.
  for (let attempt = 0; attempt < 2; attempt++) {
    const claimed = await tx
      .insert(table)
      .values({ key: req.key, requestHash: req.hash, statusCode: 0, response: {} })
      .onConflictDoNothing()
      .returning({ key: table.key });
    if (claimed.length > 0) return;
    const [row] = await tx.select(answerColumns(table)).from(table).where(eq(table.key, req.key));
    if (row) throw new AlreadyAnswered(replayOf(row, req));
  }
  throw new InvariantError("idempotency key could not be claimed");
}

/** Stores the answer (and `extra` columns) for a key claimed in `tx`; visible to others only once `tx` commits. */
export async function recordAnswer(
  tx: Executor,
  table: IdempotencyKeysTable,
  req: KeyedRequest,
  answer: StoredAnswer,
  extra: Record<string, unknown> = {},
): Promise<void> {
  await tx
    .update(table)
    .set({ statusCode: answer.statusCode, response: answer.body, ...extra })
    .where(eq(table.key, req.key));
}

/**
 * In `tx`: claims `req`'s key, runs `apply`, and stores its result as the answer with
 * `statusCode`; without a key, just runs `apply`. Throws AlreadyAnswered as claimKey does.
 */
export async function answerOnce<T>(
  tx: Executor,
  table: IdempotencyKeysTable,
  req: KeyedRequest | undefined,
  statusCode: number,
  apply: () => Promise<T>,
): Promise<T> {
  if (!req) return apply();
  await claimKey(tx, table, req);
  const body = await apply();
  await recordAnswer(tx, table, req, { statusCode, body });
  return body;
}

/** The pruning job for keys of `table` older than `retentionMs`, for the module's retention timer. */
export const idempotencyKeyPruneJob = (table: IdempotencyKeysTable, retentionMs: number): PruneJob => ({
  name: "idempotency_keys",
  table,
  key: table.key,
  at: table.createdAt,
  olderThanMs: retentionMs,
});
