/** Turns bus records into idempotent, transactional handler calls; bad records become dead letters. */
import { sql } from "drizzle-orm";
import type { BusRecord, RecordHandler } from "../bus/bus";
import { type MessageOf, type MessageType, parseMessage } from "../contracts";
import { type Database, type Db, isConnectionError } from "../db/database";
import type { Logger } from "../log";
import type { MessagingTables } from "./tables";

/** What a module reacts to: message type -> effect, run inside the inbox transaction. */
export type MessageHandlers = {
  [T in MessageType]?: (tx: Db, message: MessageOf<T>) => Promise<void>;
};

/** Counters a consumer keeps, read by /metrics. */
export interface ConsumerStats {
  processed: number;
  duplicates: number;
  ignored: number;
  dead: number;
  failures: number;
}

/** A handler that failed this many times on one message (database reachable) is recorded as dead. */
const MAX_ATTEMPTS = 10;

/** Builds the record handler for one module's consumer group. */
export function createMessageConsumer(opts: {
  db: Database;
  /** The consumer group; it scopes the per-order lock. */
  group: string;
  tables: MessagingTables;
  handlers: MessageHandlers;
  log: Logger;
  /** Called after a handler's transaction committed (e.g. to nudge the outbox relay). */
  afterCommit: () => void;
}): { handle: RecordHandler; stats: ConsumerStats } {
  const { db, group, tables, handlers, log, afterCommit } = opts;
  const stats: ConsumerStats = { processed: 0, duplicates: 0, ignored: 0, dead: 0, failures: 0 };
  const attempts = new Map<string, number>();

  const bury = async (record: BusRecord, error: string) => {
    stats.dead += 1;
    log.warn("dead letter", { topic: record.topic, key: record.key, error });
    await db.transaction((tx) =>
      tx.insert(tables.deadLetters).values({
        topic: record.topic,
        key: record.key,
        value: record.value.slice(0, 100_000),
        headers: record.headers,
        error,
      }),
    );
  };

  const handle: RecordHandler = async (record) => {
    const parsed = parseMessage(record.value);
    if (!parsed.ok) return bury(record, parsed.error);
    const message = parsed.message;
    const handler = handlers[message.type] as ((tx: Db, m: typeof message) => Promise<void>) | undefined;
    if (!handler) {
      stats.ignored += 1;
      return;
    }
    try {
      const fresh = await db.transaction(async (tx) => {
        const inserted = await tx
          .insert(tables.inbox)
          .values({ messageId: message.id, type: message.type, topic: record.topic })
          .onConflictDoNothing()
          .returning({ id: tables.inbox.messageId });
        if (inserted.length === 0) return false;
        // Messages about one order, from any topic, take turns within this consumer group.
        await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${`${group}:${message.order_id}`}, 0))`);
        await handler(tx, message);
        return true;
      });
      attempts.delete(message.id);
      if (fresh) {
        stats.processed += 1;
        afterCommit();
      } else {
        stats.duplicates += 1;
      }
    } catch (err) {
      stats.failures += 1;
      // An unreachable database says nothing about the message: retry it for as long as it takes.
      if (isConnectionError(err)) throw err;
      const n = (attempts.get(message.id) ?? 0) + 1;
      attempts.set(message.id, n);
      if (n < MAX_ATTEMPTS) throw err;
      attempts.delete(message.id);
      await bury(record, `handler failed ${n} times: ${(err as Error).message}`);
    }
  };
  return { handle, stats };
}
