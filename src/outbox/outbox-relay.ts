/** Moves committed outbox rows onto the bus, oldest first; at-least-once. */
import { and, asc, count, eq, inArray, lt, sql } from "drizzle-orm";
import type { BusRecord, Bus } from "../bus/bus";
import { retryDelayMs } from "../bus/bus";
import type { Database } from "../db/database";
import type { Logger } from "../log";
import type { MessagingTables } from "./tables";

const BATCH = 200;
const RETENTION_MS = 24 * 3600 * 1000;
const STOP_WAIT_MS = 5000;

/** A running relay. */
export interface OutboxRelay {
  /** Asks for a pass soon (called after a transaction that enqueued messages). */
  nudge(): void;
  /** Rows not yet published, for health and metrics. */
  pending(): Promise<number>;
  stop(): Promise<void>;
}

/** Starts relaying `tables.outbox` to `bus`, polling every `pollMs` and on nudges. */
export function startOutboxRelay(opts: {
  db: Database;
  bus: Bus;
  tables: MessagingTables;
  pollMs: number;
  log: Logger;
}): OutboxRelay {
  const { db, bus, tables, pollMs, log } = opts;
  const { outbox } = tables;
  let stopped = false;
  let again = false;
  let running: Promise<void> | null = null;
  let timer: Timer | null = null;
  let failures = 0;
  let lastPrune = 0;

  const passOnce = async (): Promise<number> => {
    const rows = await db.read((q) =>
      q.select().from(outbox).where(eq(outbox.state, "pending")).orderBy(asc(outbox.seq)).limit(BATCH),
    );
    if (rows.length === 0) return 0;
    const records: BusRecord[] = rows.map((r) => ({
      topic: r.topic,
      key: r.key,
      value: JSON.stringify(r.envelope),
      headers: { "message-id": r.id, "message-type": r.type },
    }));
    const seqs = rows.map((r) => r.seq);
    try {
      await bus.publish(records);
    } catch (err) {
      await db.transaction((tx) =>
        tx
          .update(outbox)
          .set({ attempts: sql`${outbox.attempts} + 1`, lastError: String((err as Error).message ?? err) })
          .where(inArray(outbox.seq, seqs)),
      );
      throw err;
    }
    await db.transaction((tx) =>
      tx.update(outbox).set({ state: "published", publishedAt: new Date() }).where(inArray(outbox.seq, seqs)),
    );
    return rows.length;
  };

  const prune = async () => {
    if (Date.now() - lastPrune < 60_000) return;
    lastPrune = Date.now();
    const before = new Date(Date.now() - RETENTION_MS);
    await db.transaction((tx) =>
      tx.delete(outbox).where(and(eq(outbox.state, "published"), lt(outbox.publishedAt, before))),
    );
  };

  const pass = async () => {
    do {
      again = false;
      try {
        while (!stopped && (await passOnce()) === BATCH) {}
        failures = 0;
        await prune();
      } catch (err) {
        failures += 1;
        if (!stopped) log.warn("outbox relay pass failed", { failures, err });
        if (!stopped) await Bun.sleep(retryDelayMs(failures));
        again = true;
      }
    } while (again && !stopped);
  };

  const kick = () => {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = pass().finally(() => {
      running = null;
    });
  };

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      kick();
      schedule();
    }, pollMs);
  };

  kick();
  schedule();
  return {
    nudge: kick,
    pending: async () => {
      const [row] = await db.read((q) =>
        q.select({ n: count() }).from(outbox).where(eq(outbox.state, "pending")),
      );
      return row?.n ?? 0;
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      // A publish stuck on an unreachable broker must not hold the shutdown: its rows stay pending.
      await Promise.race([running, Bun.sleep(STOP_WAIT_MS)]);
    },
  };
}
