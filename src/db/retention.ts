/**
 * Retention: bookkeeping tables (inbox, published outbox rows, dead letters, remembered
 * rejections) are pruned by age on the database clock, in bounded batches, by a timer per
 * module. Safe with several processes of one module: each batch skips rows another is deleting.
 * This is the mechanism; the jobs are described by who owns each table (the messaging tables'
 * in src/messaging/retention.ts).
 */
import { and, inArray, lt, type SQL, sql } from "drizzle-orm";
import type { PgColumn, PgTable } from "drizzle-orm/pg-core";
import type { Logger } from "../log";
import { createLoop, type Loop } from "../loop";
import type { Database } from "./database";

/** Most rows one DELETE removes: short statements and locks, whatever the backlog. */
export const PRUNE_BATCH = 5000;

/** One table's pruning rule: rows whose `at` is older than `olderThanMs` (and match `where`) go. */
export interface PruneJob {
  /** Names the job in logs and in the result of a run. */
  name: string;
  table: PgTable;
  /** A unique column of `table` (its primary key): the batch is chosen by it. */
  key: PgColumn;
  /** The timestamp the age is counted from; rows where it is null are kept. */
  at: PgColumn;
  olderThanMs: number;
  where?: SQL;
}

/**
 * Deletes `job`'s expired rows, PRUNE_BATCH at a time, each batch its own statement, until a
 * batch comes back short (or `stopped()`); returns how many went. Rows locked by a concurrent
 * pruner are skipped, so two processes never wait on or deadlock with each other.
 */
export async function pruneOlderThan(db: Database, job: PruneJob, stopped: () => boolean = () => false): Promise<number> {
  const { table, key, at } = job;
  const expired = and(lt(at, sql`now() - ${job.olderThanMs / 1000}::double precision * interval '1 second'`), job.where);
  let total = 0;
  for (;;) {
    const deleted = await db.autocommit((q) =>
      q
        .delete(table)
        .where(inArray(key, q.select({ key }).from(table).where(expired).limit(PRUNE_BATCH).for("update", { skipLocked: true })))
        .returning({ key }),
    );
    total += deleted.length;
    if (deleted.length < PRUNE_BATCH || stopped()) return total;
  }
}

/** Runs every job once; returns the rows pruned per job. */
export async function pruneAll(db: Database, jobs: PruneJob[], stopped?: () => boolean): Promise<Record<string, number>> {
  const pruned: Record<string, number> = {};
  for (const job of jobs) pruned[job.name] = (pruned[job.name] ?? 0) + (await pruneOlderThan(db, job, stopped));
  return pruned;
}

/** How often a module prunes; the first run comes 30-60 s after the start (not in its rush; replicas spread). */
const PRUNE_EVERY_MS = 60_000;

/** A module's retention timer. */
export interface Retention {
  stop(): Promise<void>;
}

/** Prunes `jobs` every minute until stopped; a failed run is logged and tried again next time. */
export function startRetention(db: Database, jobs: PruneJob[], log: Logger): Retention {
  const loop: Loop = createLoop({
    run: async () => {
      const pruned = await pruneAll(db, jobs, () => loop.stopped());
      const total = Object.values(pruned).reduce((a, b) => a + b, 0);
      if (total > 0) log.info("pruned", pruned);
    },
    every: PRUNE_EVERY_MS,
    failed: (err) => {
      if (!loop.stopped()) log.warn("pruning failed; trying again later", { err });
    },
    unref: true,
  });
  loop.runIn(PRUNE_EVERY_MS * (0.5 + Math.random() / 2));
  return { stop: () => loop.stop() };
}
