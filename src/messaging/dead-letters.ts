/**
 * Dead letters for an operator: list them, and redrive one through the module's consumer once
 * its cause is fixed. A redrive is the same path as a delivery (parse, inbox, handler, outbox)
 * in one transaction that also resolves the letter, so it applies a message at most once.
 */
import { and, desc, eq, getTableColumns, isNotNull, isNull, lt, type SQL, sql } from "drizzle-orm";
import { BAD_SIGNATURE } from "../bus/signing";
import { type Database, isConnectionError } from "../db/database";
import { declareErrors } from "../errors";
import type { Logger } from "../log";
import { type ApplyOutcome, errorText, type MessageConsumer } from "./message-consumer";
import type { MessagingTables } from "./tables";

type DeadLetters = MessagingTables["deadLetters"];
type DeadLetterRow = DeadLetters["$inferSelect"];

/** Which dead letters a listing shows: still dead (the default), resolved by a redrive, or both. */
export const DEAD_LETTER_FILTERS = ["dead", "resolved", "all"] as const;
export type DeadLetterFilter = (typeof DEAD_LETTER_FILTERS)[number];

/** The codes a redrive can refuse with (documented by POST /admin/dead-letters/{id}/redrive, src/messaging/admin.ts). */
export const DEAD_LETTER_ERRORS = declareErrors("dead letters", {
  unknown_dead_letter: { kind: "not_found", when: "no dead letter has this id", message: "no dead letter 5", field: "id" },
  redrive_failed: {
    kind: "conflict",
    when: "the handler failed again (the attempt is counted)",
    message: "the handler failed again: no wallet for user 9",
  },
  already_resolved: { kind: "conflict", when: "a redrive resolved it before", message: "dead letter 5 was resolved already" },
  redrive_window_passed: {
    kind: "conflict",
    when: "it is older than the inbox retention window",
    message: "dead letter 5 is older than the inbox retention window; it cannot be redriven safely",
  },
  invalid_message: {
    kind: "invalid",
    when: "the record is still not a valid message",
    message: "the record is still not a valid message: payload.order_id: Invalid UUID",
  },
  bad_signature: {
    kind: "invalid",
    when: "its signature is missing or wrong",
    message: "the record's signature is missing or wrong: it cannot be redriven",
  },
});

/** A dead letter as the admin API shows it. */
export function deadLetterView(r: DeadLetterRow) {
  return {
    id: r.id,
    state: r.resolvedAt ? ("resolved" as const) : ("dead" as const),
    topic: r.topic,
    key: r.key,
    value: r.value,
    headers: r.headers as Record<string, string>,
    error: r.error,
    received_at: r.receivedAt.toISOString(),
    redrives: r.redrives,
    last_redrive_at: r.lastRedriveAt?.toISOString() ?? null,
    resolved_at: r.resolvedAt?.toISOString() ?? null,
  };
}

/** A page of dead letters, newest first; `cursor` is the `next_cursor` of the previous page. */
export async function listDeadLetters(db: Database, table: DeadLetters, q: { state: DeadLetterFilter; limit: number; cursor?: number }) {
  const where: SQL[] = [];
  if (q.state === "dead") where.push(isNull(table.resolvedAt));
  if (q.state === "resolved") where.push(isNotNull(table.resolvedAt));
  if (q.cursor !== undefined) where.push(lt(table.id, q.cursor));
  const rows = await db.read((r) =>
    r
      .select()
      .from(table)
      .where(and(...where))
      .orderBy(desc(table.id))
      .limit(q.limit + 1),
  );
  const page = rows.slice(0, q.limit);
  return { dead_letters: page.map(deadLetterView), next_cursor: rows.length > q.limit ? String(page.at(-1)?.id) : null };
}

/** What a redrive needs: the module's database, dead letters, consumer, and how far back its inbox remembers. */
export interface Redriver {
  db: Database;
  table: DeadLetters;
  consumer: MessageConsumer;
  /** The inbox retention: past it, the inbox may have forgotten a later delivery of the same message. */
  inboxWindowMs: number;
  log: Logger;
}

/** A handler that threw during a redrive (the transaction was rolled back). */
class HandlerFailed extends Error {}

/**
 * Feeds dead letter `id` back through the consumer. Resolved: the letter, with `applied`
 * (the handler ran), `duplicate` (the inbox had the message already: nothing ran) or `ignored`
 * (this module no longer reacts to its type). A record still invalid (422 invalid_message; 422
 * bad_signature when its signature is missing or wrong, see src/bus/signing.ts) or
 * whose handler still fails (409 redrive_failed) only counts the attempt and keeps the new error.
 * An already resolved letter answers 409 already_resolved; one older than the inbox window,
 * 409 redrive_window_passed (the inbox could no longer tell whether it was applied since).
 */
export async function redriveDeadLetter(
  r: Redriver,
  id: number,
): Promise<{ dead_letter: ReturnType<typeof deadLetterView>; outcome: ApplyOutcome }> {
  const { db, table, consumer, log } = r;
  const [found] = await db.read((q) =>
    q
      .select({
        ...getTableColumns(table),
        expired: sql<boolean>`${table.receivedAt} < now() - ${r.inboxWindowMs / 1000}::double precision * interval '1 second'`,
      })
      .from(table)
      .where(eq(table.id, id)),
  );
  if (!found) throw DEAD_LETTER_ERRORS.error("unknown_dead_letter", `no dead letter ${id}`, "id");
  if (found.resolvedAt) throw alreadyResolved(id);
  if (found.expired) {
    throw DEAD_LETTER_ERRORS.error(
      "redrive_window_passed",
      `dead letter ${id} is older than the inbox retention window; it cannot be redriven safely`,
    );
  }
  // The same step as a delivery: the signature (when records are signed), then the value.
  const parsed = consumer.parse({
    topic: found.topic,
    key: found.key,
    value: found.value,
    headers: found.headers as Record<string, string>,
  });
  if (!parsed.ok) {
    await recordFailure(r, id, `redrive: ${parsed.error}`);
    if (parsed.error === BAD_SIGNATURE)
      throw DEAD_LETTER_ERRORS.error("bad_signature", "the record's signature is missing or wrong: it cannot be redriven");
    throw DEAD_LETTER_ERRORS.error("invalid_message", `the record is still not a valid message: ${parsed.error}`);
  }
  const message = parsed.message;
  try {
    const done = await db.transaction(async (tx) => {
      // Locked: two redrives of one letter take turns, and the second sees it resolved.
      const [open] = await tx
        .select({ id: table.id })
        .from(table)
        .where(and(eq(table.id, id), isNull(table.resolvedAt)))
        .for("update");
      if (!open) return null;
      const outcome = await consumer.applyIn(tx, message, found.topic).catch((err: unknown) => {
        throw new HandlerFailed(errorText(err), { cause: err });
      });
      const [row] = await tx
        .update(table)
        .set({ resolvedAt: sql`now()`, redrives: sql`${table.redrives} + 1`, lastRedriveAt: sql`now()` })
        .where(eq(table.id, id))
        .returning();
      return { dead_letter: deadLetterView(row as DeadLetterRow), outcome };
    });
    if (!done) throw alreadyResolved(id);
    log.info("dead letter redriven", { id, topic: found.topic, key: found.key, outcome: done.outcome });
    return done;
  } catch (err) {
    if (!(err instanceof HandlerFailed) || isConnectionError(err.cause)) throw err instanceof HandlerFailed ? err.cause : err;
    await recordFailure(r, id, `redrive failed: ${err.message}`);
    log.warn("dead letter redrive failed", { id, topic: found.topic, key: found.key, error: err.message });
    throw DEAD_LETTER_ERRORS.error("redrive_failed", `the handler failed again: ${err.message}`);
  }
}

const alreadyResolved = (id: number) => DEAD_LETTER_ERRORS.error("already_resolved", `dead letter ${id} was resolved already`);

/** Counts a failed redrive and keeps its error; nothing else changes. */
const recordFailure = (r: Redriver, id: number, error: string) =>
  r.db.autocommit((q) =>
    q
      .update(r.table)
      .set({ redrives: sql`${r.table.redrives} + 1`, lastRedriveAt: sql`now()`, error })
      .where(and(eq(r.table.id, id), isNull(r.table.resolvedAt))),
  );
