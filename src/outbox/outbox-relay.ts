/**
 * Moves committed outbox rows onto the bus, oldest first, at-least-once. A row is claimed
 * (`in_flight`) in one statement, handed to the bus, and marked `published` only once the bus
 * says it is durable downstream; a row whose publish failed goes back to `pending`. Marks are
 * written together, a moment later: a crash before that only sends a row twice, and consumers
 * drop the duplicate. Published rows are pruned by the module's retention (retention.ts).
 */
import { and, asc, eq, inArray, notInArray, sql } from "drizzle-orm";
import type { Bus, BusRecord } from "../bus/bus";
import { retryDelayMs } from "../bus/bus";
import { type RecordSigner, SIGNATURE_HEADER } from "../bus/signing";
import type { Database } from "../db/database";
import type { Logger } from "../log";
import type { MessagingTables } from "./tables";

const BATCH = 200;
/** How long confirmed rows wait to be marked published together (fewer statements under load). */
const MARK_AFTER_MS = 100;

/** A running relay. */
export interface OutboxRelay {
  /** Asks for a pass soon (called after a transaction that enqueued messages committed). */
  nudge(): void;
  /** Stops claiming; rows still in flight stay `in_flight` and are sent again after a restart. */
  stop(): Promise<void>;
}

type Row = MessagingTables["outbox"]["$inferSelect"];

/** Starts relaying `tables.outbox` to `bus`: on nudges, and every `pollMs` when nothing nudged. */
export async function startOutboxRelay(opts: {
  db: Database;
  bus: Bus;
  tables: MessagingTables;
  pollMs: number;
  log: Logger;
  /** Signs every record (a `signature` header); null or absent: records go unsigned. */
  signer?: RecordSigner | null;
  /** Told of the records the bus has acknowledged (for the produced-messages counter). */
  onPublished?: (records: BusRecord[]) => void;
}): Promise<OutboxRelay> {
  const { db, bus, tables, pollMs, log } = opts;
  const signer = opts.signer ?? null;
  const { outbox } = tables;
  let stopped = false;
  let again = false;
  let running: Promise<void> | null = null;
  let inFlight = 0;
  let failures = 0;
  let lastPass = 0;
  let timer: Timer | null = null;
  /** Claims stopped because the bus had enough in flight: claim again when a send finishes. */
  let blocked = false;
  let confirmed: number[] = [];
  let marking: Promise<void> | null = null;
  let markTimer: Timer | null = null;
  /** Rows this relay claimed and has not yet released or marked published. */
  const held = new Set<number>();
  /**
   * A claim failed: its UPDATE may have committed with the answer lost (the database went away),
   * leaving rows `in_flight` that nobody holds. The next pass returns such rows to `pending`.
   */
  let orphansPossible = false;

  /** Retries `fn` with backoff until it succeeds or the relay stops: rows must not stay claimed. */
  const persist = async (what: string, fn: () => Promise<unknown>) => {
    for (let attempt = 1; !stopped; attempt++) {
      try {
        await fn();
        return;
      } catch (err) {
        log.warn(`outbox: ${what} failed; retrying`, { attempt, err });
        await Bun.sleep(retryDelayMs(attempt));
      }
    }
  };

  const claim = (limit: number): Promise<Row[]> =>
    db.autocommit((q) =>
      q
        .update(outbox)
        .set({ state: "in_flight" })
        .where(
          inArray(
            outbox.seq,
            q.select({ seq: outbox.seq }).from(outbox).where(eq(outbox.state, "pending")).orderBy(asc(outbox.seq)).limit(limit).for("update", { skipLocked: true }),
          ),
        )
        .returning(),
    );

  const send = async (rows: Row[]) => {
    rows.sort((a, b) => a.seq - b.seq);
    const seqs = rows.map((r) => r.seq);
    const records: BusRecord[] = rows.map((r) => {
      const record: BusRecord = { topic: r.topic, key: r.key, value: JSON.stringify(r.envelope), headers: { "message-id": r.id, "message-type": r.type } };
      if (signer) record.headers[SIGNATURE_HEADER] = signer.sign(record);
      return record;
    });
    try {
      await bus.publish(records);
    } catch (err) {
      if (stopped) return;
      failures += 1;
      log.warn("outbox: publish failed; will retry", { rows: rows.length, failures, err });
      const lastError = String((err as Error).message ?? err).slice(0, 1000);
      await persist("release", () =>
        db.autocommit((q) =>
          q.update(outbox).set({ state: "pending", attempts: sql`${outbox.attempts} + 1`, lastError }).where(inArray(outbox.seq, seqs)),
        ),
      );
      for (const seq of seqs) held.delete(seq);
      await Bun.sleep(retryDelayMs(failures));
      kick(); // the released rows are pending again: don't wait for a nudge or the safety-net poll
      return;
    }
    failures = 0;
    opts.onPublished?.(records);
    if (stopped) return; // confirmed after stop(): sent again after a restart, and dropped as a duplicate
    confirmed.push(...seqs);
    markTimer ??= setTimeout(() => void markConfirmed(), MARK_AFTER_MS);
  };

  /** Marks every confirmed row published in one statement. */
  const markConfirmed = async () => {
    markTimer = null;
    await marking;
    const seqs = confirmed;
    confirmed = [];
    if (seqs.length === 0) return;
    marking = persist("mark published", () => markPublished(seqs));
    await marking;
    for (const seq of seqs) held.delete(seq);
  };

  const markPublished = (seqs: number[]) =>
    db.autocommit((q) => q.update(outbox).set({ state: "published", publishedAt: new Date() }).where(inArray(outbox.seq, seqs)));

  /** Claims and hands over batches while the bus takes more publishes in flight. */
  const fill = async () => {
    lastPass = Date.now();
    blocked = false;
    if (orphansPossible) {
      const mine = [...held];
      await db.autocommit((q) =>
        q
          .update(outbox)
          .set({ state: "pending" })
          .where(and(eq(outbox.state, "in_flight"), mine.length ? notInArray(outbox.seq, mine) : undefined)),
      );
      orphansPossible = false;
    }
    while (!stopped) {
      if (inFlight >= bus.publishConcurrency) {
        blocked = true;
        return;
      }
      let rows: Row[];
      try {
        rows = await claim(BATCH);
      } catch (err) {
        orphansPossible = true;
        throw err;
      }
      if (rows.length === 0) return;
      for (const r of rows) held.add(r.seq);
      inFlight += 1;
      void send(rows).finally(() => {
        inFlight -= 1;
        if (blocked) kick();
      });
      // A short batch took everything committed so far; later commits nudge again.
      if (rows.length < BATCH) return;
    }
  };

  const pass = async () => {
    do {
      again = false;
      try {
        await fill();
      } catch (err) {
        if (stopped) return;
        failures += 1;
        log.warn("outbox relay pass failed", { failures, err });
        await Bun.sleep(retryDelayMs(failures));
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
      // A kick that came after the pass's last look (between its loop test and here) is not lost.
      if (again) kick();
    });
  };

  const schedule = () => {
    timer = setTimeout(() => {
      // A safety net for rows no nudge announced (another process, a lost wake-up).
      if (Date.now() - lastPass >= pollMs) kick();
      schedule();
    }, pollMs);
  };

  // Claimed by a run that ended before they were confirmed: send them again (duplicates are harmless).
  await persist("reclaim", () => db.autocommit((q) => q.update(outbox).set({ state: "pending" }).where(eq(outbox.state, "in_flight"))));
  kick();
  schedule();
  return {
    nudge: kick,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
      // What the bus confirmed so far is marked now (one try); the rest is sent again after a restart.
      if (markTimer) clearTimeout(markTimer);
      await marking;
      if (confirmed.length > 0) await markPublished(confirmed.splice(0)).catch(() => {});
    },
  };
}
