/**
 * Turns batches of bus records into idempotent handler calls in one transaction per batch:
 * one statement records the batch in the inbox and finds the duplicates, the handlers run for
 * the fresh messages, their outbox rows are written together. A batch that fails is applied
 * again one record at a time, so a poison record is dead-lettered alone.
 */
import { sql } from "drizzle-orm";
import type { BatchHandler, BusRecord } from "../bus/bus";
import { type Message, type MessageOf, type MessageType, parseMessage } from "../contracts";
import { type Database, type Db, isConnectionError } from "../db/database";
import type { Logger } from "../log";
import type { Enqueue, OutboxWriter } from "./outbox";
import type { MessagingTables } from "./tables";

/** What a module reacts to: message type -> effect, run inside the batch's transaction. */
export type MessageHandlers = {
  [T in MessageType]?: (tx: Db, message: MessageOf<T>, enqueue: Enqueue) => Promise<void>;
};

/** A module's consumer: its handlers, and the rows a batch will write, locked up front. */
export interface Consumers {
  handlers: MessageHandlers;
  /**
   * Locks, in one statement and a fixed order, the rows the batch's fresh messages will update,
   * so that two batches touching the same rows in different orders cannot deadlock.
   */
  lockRows?: (tx: Db, messages: Message[]) => Promise<void>;
}

/** Counters a consumer keeps, read by /metrics. */
export interface ConsumerStats {
  processed: number;
  duplicates: number;
  ignored: number;
  dead: number;
  failures: number;
  batches: number;
}

/** A handler that failed this many times on one message (database reachable) is recorded as dead. */
const MAX_ATTEMPTS = 5;

type Parsed = { record: BusRecord; message: Message | null; error: string | null };

/** Builds the batch handler for one module's consumer group. */
export function createMessageConsumer(opts: {
  db: Database;
  /** The consumer group; it scopes the per-order lock. */
  group: string;
  tables: MessagingTables;
  outbox: OutboxWriter;
  consumers: Consumers;
  log: Logger;
}): { handle: BatchHandler; stats: ConsumerStats } {
  const { db, group, tables, outbox, log } = opts;
  const { handlers, lockRows } = opts.consumers;
  const stats: ConsumerStats = { processed: 0, duplicates: 0, ignored: 0, dead: 0, failures: 0, batches: 0 };
  const attempts = new Map<string, number>();

  const deadRow = (record: BusRecord, error: string) => ({
    topic: record.topic,
    key: record.key,
    value: record.value.slice(0, 100_000),
    headers: record.headers,
    error,
  });

  const handlerFor = (m: Message) => handlers[m.type] as ((tx: Db, m: Message, e: Enqueue) => Promise<void>) | undefined;

  /** Applies `batch` in one transaction; resolves with the counts to add once it committed. */
  const apply = (batch: Parsed[]) =>
    db.transaction(async (tx) => {
      const dead = batch.filter((p) => p.error !== null);
      if (dead.length > 0) await tx.insert(tables.deadLetters).values(dead.map((p) => deadRow(p.record, p.error as string)));
      const wanted = new Map<string, Message>();
      for (const p of batch) if (p.message && handlerFor(p.message) && !wanted.has(p.message.id)) wanted.set(p.message.id, p.message);
      const known = batch.filter((p) => p.message && handlerFor(p.message)).length;
      const ignored = batch.length - dead.length - known;
      if (wanted.size === 0) return { processed: 0, duplicates: known, ignored, dead };
      const inserted = await tx
        .insert(tables.inbox)
        .values([...wanted.values()].map((m) => ({ messageId: m.id, type: m.type, topic: topicOf(batch, m.id) })))
        .onConflictDoNothing()
        .returning({ id: tables.inbox.messageId });
      const insertedIds = new Set(inserted.map((r) => r.id));
      const fresh = [...wanted.values()].filter((m) => insertedIds.has(m.id));
      if (fresh.length > 0) {
        // Messages about one order, from any topic, take turns within this consumer group (locks in a fixed order: no deadlock).
        if (db.driver === "postgres") {
          // (PGlite has one connection: its transactions never overlap, so there is nothing to lock.)
          const keys = [...new Set(fresh.map((m) => `${group}:${m.order_id}`))];
          await tx.execute(
            sql`select pg_advisory_xact_lock(h) from (select distinct hashtextextended(k, 0) as h from unnest(array[${sql.join(
              keys.map((k) => sql`${k}`),
              sql`, `,
            )}]::text[]) as k order by h) as locks`,
          );
          await lockRows?.(tx, fresh);
        }
        const staged = outbox.staging();
        for (const m of fresh) await (handlerFor(m) as NonNullable<ReturnType<typeof handlerFor>>)(tx, m, staged.enqueue);
        await staged.flush(tx);
      }
      return { processed: fresh.length, duplicates: known - fresh.length, ignored, dead };
    });

  const handle: BatchHandler = async (records) => {
    const batch: Parsed[] = records.map((record) => {
      const parsed = parseMessage(record.value);
      return parsed.ok ? { record, message: parsed.message, error: null } : { record, message: null, error: parsed.error };
    });
    try {
      const done = await apply(batch);
      stats.batches += 1;
      stats.processed += done.processed;
      stats.duplicates += done.duplicates;
      stats.ignored += done.ignored;
      stats.dead += done.dead.length;
      for (const p of done.dead) log.warn("dead letter", { topic: p.record.topic, key: p.record.key, error: p.error });
      for (const p of batch) if (p.message) attempts.delete(p.message.id);
      return records.length;
    } catch (err) {
      stats.failures += 1;
      // An unreachable database says nothing about the records: retry them for as long as it takes.
      if (isConnectionError(err)) throw err;
      if (records.length > 1) return oneByOne(records);
      return giveUpOrRetry(batch[0] as Parsed, err as Error);
    }
  };

  /** After a failed batch: each record in its own transaction, stopping at one to retry later. */
  const oneByOne = async (records: BusRecord[]): Promise<number> => {
    for (const [i, record] of records.entries()) {
      // A thrown error (the database went away) keeps what the records before it did.
      const done = await handle([record]).catch(() => 0);
      if (done === 0) return i;
    }
    return records.length;
  };

  /** One record failed: retry it later, or after MAX_ATTEMPTS set it aside as dead. */
  const giveUpOrRetry = async (p: Parsed, err: Error): Promise<number> => {
    const id = p.message?.id ?? "";
    const n = (attempts.get(id) ?? 0) + 1;
    attempts.set(id, n);
    log.warn("handler failed", { topic: p.record.topic, key: p.record.key, attempt: n, err });
    if (n < MAX_ATTEMPTS) return 0;
    attempts.delete(id);
    await db.transaction((tx) => tx.insert(tables.deadLetters).values(deadRow(p.record, `handler failed ${n} times: ${err.message}`)));
    stats.dead += 1;
    log.warn("dead letter", { topic: p.record.topic, key: p.record.key, error: err.message });
    return 1;
  };

  return { handle, stats };
}

const topicOf = (batch: Parsed[], id: string): string => batch.find((p) => p.message?.id === id)?.record.topic ?? "";
