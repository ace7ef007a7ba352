/** What every module's audit report does alike: read one consistent snapshot, check its outbox. */
import { and, asc, count, lt, ne, sql } from "drizzle-orm";
import type { Database, Executor } from "../../db/database";
import type { MessagingTables } from "../../messaging/tables";
import { Violations } from "./violations";

/** An outbox row may wait this long for the relay before the audit calls it stuck (a busy relay drains in well under a second). */
const OUTBOX_GRACE_SECONDS = 10;

/** Rows listed per local rule; the rest are counted. */
export const LISTED = 20;

/** Runs `fn` in one read-only, repeatable-read transaction: every query sees the same instant. */
export function readSnapshot<T>(db: Database, fn: (tx: Executor) => Promise<T>): Promise<T> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`set transaction isolation level repeatable read, read only`);
    return fn(tx);
  });
}

/** A violation list for one module's report (no prefix: the shop's audit adds the module's name). */
export const localViolations = () => new Violations("");

/** Every outbox row published: rows older than the grace and not published yet are violations. */
export async function checkOutbox(
  tx: Executor,
  tables: MessagingTables,
  out: Violations,
): Promise<{ outbox_rows: number; dead_letters: number }> {
  const { outbox, deadLetters } = tables;
  const stuck = await tx
    .select({
      seq: outbox.seq,
      type: outbox.type,
      state: outbox.state,
      key: outbox.key,
      ageSeconds: sql<number>`extract(epoch from now() - ${outbox.createdAt})`.mapWith(Number),
      total: sql<number>`count(*) over ()`.mapWith(Number),
    })
    .from(outbox)
    .where(and(ne(outbox.state, "published"), lt(outbox.createdAt, sql`now() - make_interval(secs => ${OUTBOX_GRACE_SECONDS})`)))
    .orderBy(asc(outbox.seq))
    .limit(LISTED);
  out.addCounted(
    "outbox rows not published",
    stuck[0]?.total ?? 0,
    stuck.map((r) => `outbox row ${r.seq} (${r.type}, order ${r.key}) still ${r.state} after ${Math.round(r.ageSeconds)} s`),
  );
  const [rows] = await tx.select({ n: count() }).from(outbox);
  const [dead] = await tx.select({ n: count() }).from(deadLetters).where(sql`${deadLetters.resolvedAt} is null`);
  return { outbox_rows: rows?.n ?? 0, dead_letters: dead?.n ?? 0 };
}
