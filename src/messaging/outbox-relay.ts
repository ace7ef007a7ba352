/**
 * Moves committed outbox rows onto the bus, oldest first, at-least-once. A row is claimed
 * (`in_flight`) in one statement, handed to the bus, and marked `published` only once the bus
 * says it is durable downstream; a row whose publish failed goes back to `pending`. Marks are
 * written together, a moment later: a crash before that only sends a row twice, and consumers
 * drop the duplicate. Published rows are pruned by the module's retention (retention.ts).
 *
 * One relay per outbox claims at a time (ADR 0010): on PostgreSQL, several processes of a module
 * share the outbox, and the one holding a session-level advisory lock (keyed by the outbox table)
 * on a connection of its own leads; the others stand by, trying for the lock every second. Claims
 * run on the lock's connection and only match on the backend that took the lock (a session lock
 * lives as long as its backend), so a relay whose connection broke, even one that reconnected
 * silently, cannot claim once another may lead; each second the leader also checks pg_locks.
 * A new leader first returns the rows left `in_flight` to `pending`. PGlite is one process by construction: its relay always leads.
 */
import { and, asc, eq, inArray, notInArray, type SQL, sql } from "drizzle-orm";
import { getTableConfig } from "drizzle-orm/pg-core";
import { rowsOf } from "../db/rows";
import { anyOf } from "../db/bulk";
import type { Bus, BusRecord } from "../bus/bus";
import { retryDelayMs } from "../bus/bus";
import { type RecordSigner, SIGNATURE_HEADER } from "../bus/signing";
import type { Database, Executor, DbSession } from "../db/database";
import type { Logger } from "../log";
import type { MessagingTables } from "./tables";

const BATCH = 200;
/** How long confirmed rows wait to be marked published together (fewer statements under load). */
const MARK_AFTER_MS = 100;
/** How often a standby tries for the lead, and a leader checks it still holds it. */
const ELECT_EVERY_MS = 1000;
/** First key of the relays' advisory locks (the second is the outbox table's). "OBOX". */
const LOCK_CLASS = 0x4f424f58;

/** A running relay. */
export interface OutboxRelay {
  /** Asks for a pass soon (called after a transaction that enqueued messages committed). */
  nudge(): void;
  /** True while this relay is the one that claims its outbox's rows. */
  leading(): boolean;
  /** Stops claiming and gives up the lead; rows still in flight stay `in_flight` and are sent again by the next leader. */
  stop(): Promise<void>;
}

type Row = MessagingTables["outbox"]["$inferSelect"];

/** The advisory-lock key of an outbox: a positive 31-bit hash (FNV-1a) of its schema-qualified name. */
export function outboxLockKey(outbox: MessagingTables["outbox"]): [number, number] {
  const { schema, name } = getTableConfig(outbox);
  let h = 0x811c9dc5;
  for (const ch of `${schema ?? "public"}.${name}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193);
  return [LOCK_CLASS, (h >>> 0) & 0x7fffffff];
}

/**
 * Where claims run, and whether this relay may claim. On PostgreSQL: a dedicated session that
 * holds the outbox's advisory lock, and `fence`, a condition true only in the session holding it.
 */
interface Lead {
  session: DbSession;
  /** True only in the session holding the lock (reads pg_locks: the leader's check each second). */
  holds: SQL;
  /**
   * The claims' fence: true only on the backend that took the lock (`pg_backend_pid()`, no table
   * read). A backend keeps a session lock until it ends, so only that backend may claim; a
   * connection that broke and silently reconnected is a new backend, and matches nothing.
   */
  fence: SQL;
  /** Set when the connection closed or broke: the lock is gone with it. */
  lost: boolean;
}

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
  /** How often a standby tries for the lead (default 1 s, or `pollMs` if shorter). */
  electEveryMs?: number;
}): Promise<OutboxRelay> {
  const { db, bus, tables, pollMs, log } = opts;
  const signer = opts.signer ?? null;
  const { outbox } = tables;
  const elected = db.session !== undefined;
  const electEveryMs = opts.electEveryMs ?? Math.min(ELECT_EVERY_MS, pollMs);
  const [lockClass, lockKey] = outboxLockKey(outbox);
  /** Where the other processes' commits wake the leader. */
  const channel = `${getTableConfig(outbox).schema ?? "public"}_outbox_committed`;
  let stopped = false;
  let again = false;
  let running: Promise<void> | null = null;
  let inFlight = 0;
  let failures = 0;
  let lastPass = 0;
  let timer: Timer | null = null;
  let electTimer: Timer | null = null;
  let electing: Promise<void> | null = null;
  /** PostgreSQL: the lead while this relay holds it. */
  let lead: Lead | null = null;
  /** PostgreSQL: a standby's connection, kept for its next try. */
  let standby: Lead | null = null;
  /** Claims stopped because the bus had enough in flight: claim again when a send finishes. */
  let blocked = false;
  let confirmed: number[] = [];
  let marking: Promise<void> | null = null;
  let markTimer: Timer | null = null;
  /** Rows this relay claimed and has not yet released or marked published. */
  const held = new Set<number>();
  /**
   * Rows may be `in_flight` that no running relay holds: left by a previous leader (this relay
   * just took the lead), or by a claim of this relay that failed (its UPDATE may have committed
   * with the answer lost). The next pass returns such rows to `pending`.
   */
  let orphansPossible = !elected;

  const leading = () => !elected || (lead !== null && !lead.lost);

  /** Runs a claim: on PGlite, as any statement; on PostgreSQL, on the lead's session, fenced by its lock. */
  const claimWith = <T>(fn: (q: Executor, fence: SQL | undefined) => Promise<T>): Promise<T> => {
    if (!elected) return db.autocommit((q) => fn(q, undefined));
    const current = lead;
    if (!current || current.lost) return Promise.reject(new Error("outbox relay: not leading"));
    return fn(current.session.db, current.fence);
  };

  /** Gives the lead up: closes its session (the lock goes with it). */
  const resign = async (why: string) => {
    const current = lead;
    if (!current) return;
    lead = null;
    log.info("outbox relay: lead given up", { why });
    await current.session.close().catch(() => {});
  };

  /** Takes the lead if the lock is free; a new leader reclaims what was left in flight on its next pass. */
  const elect = async () => {
    if (stopped) return;
    if (lead?.lost) await resign("lock connection closed");
    if (lead) {
      // Still holding it? A broken connection reports on use; a silent reconnect fails the fence.
      try {
        const [row] = rowsOf(await lead.session.quiet.execute(sql`select ${lead.holds} and ${lead.fence} as held`));
        if (row?.held !== true) await resign("lock no longer held");
      } catch (err) {
        log.warn("outbox relay: lock check failed", { err });
        await resign("lock check failed");
      }
      return;
    }
    // A standby keeps its connection between tries (no new connection every second).
    let candidate = standby?.lost ? null : standby;
    standby = null;
    try {
      if (!candidate) {
        const session = await (db.session as () => Promise<DbSession>)();
        const fresh: Lead = {
          session,
          lost: false,
          holds: sql`exists (select 1 from pg_locks where locktype = 'advisory' and pid = pg_backend_pid() and granted
            and classid::bigint = ${lockClass}::bigint and objid::bigint = ${lockKey}::bigint and objsubid = 2)`,
          // Until the lock is taken: a pid no backend has.
          fence: sql`false`,
        };
        session.onClose(() => {
          fresh.lost = true;
        });
        candidate = fresh;
      }
      const [row] = rowsOf(
        await candidate.session.quiet.execute(sql`select pg_try_advisory_lock(${lockClass}::int, ${lockKey}::int) as ok, pg_backend_pid() as pid`),
      );
      if (stopped || candidate.lost) {
        await candidate.session.close().catch(() => {});
        return;
      }
      if (row?.ok !== true) {
        standby = candidate;
        return;
      }
      candidate.fence = sql`pg_backend_pid() = ${Number(row.pid)}::int`;
      // A leader whose host vanished (no FIN) is noticed by the server in ~20 s, not the kernel's 2 h.
      await candidate.session.quiet
        .execute(sql`select set_config('tcp_keepalives_idle', '10', false), set_config('tcp_keepalives_interval', '5', false), set_config('tcp_keepalives_count', '2', false)`)
        .catch(() => {});
      // Commits in the other processes of the module wake this relay (they nudge a standby).
      await candidate.session.listen(channel, kick);
      lead = candidate;
      orphansPossible = true;
      log.info("outbox relay: leading", { outbox: getTableConfig(outbox).name });
      kick();
    } catch (err) {
      log.warn("outbox relay: election failed; trying again", { err });
      if (candidate) await candidate.session.close().catch(() => {});
    }
  };

  /** A standby's nudge: tell the leader, at most one notification in flight (later nudges ride on the next). */
  let notifying = false;
  let notifyAgain = false;
  const notifyLeader = () => {
    if (stopped) return;
    if (notifying) {
      notifyAgain = true;
      return;
    }
    notifying = true;
    db.autocommit((q) => q.execute(sql`select pg_notify(${channel}, '')`))
      .catch((err) => log.debug("outbox relay: notify failed (the leader polls anyway)", { err }))
      .finally(() => {
        notifying = false;
        if (notifyAgain) {
          notifyAgain = false;
          notifyLeader();
        }
      });
  };

  const scheduleElection = () => {
    electTimer = setTimeout(() => {
      electing = elect().finally(() => {
        electing = null;
        if (!stopped) scheduleElection();
      });
    }, electEveryMs);
  };

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
    claimWith((q, fence) =>
      q
        .update(outbox)
        .set({ state: "in_flight" })
        .where(
          inArray(
            outbox.seq,
            q
              .select({ seq: outbox.seq })
              .from(outbox)
              .where(and(eq(outbox.state, "pending"), fence))
              .orderBy(asc(outbox.seq))
              .limit(limit)
              .for("update", { skipLocked: true }),
          ),
        )
        .returning(),
    );

  /** Returns rows `in_flight` that this relay does not hold to `pending` (fenced like a claim). */
  const reclaimOrphans = () => {
    const mine = [...held];
    return claimWith((q, fence) =>
      q
        .update(outbox)
        .set({ state: "pending" })
        .where(and(eq(outbox.state, "in_flight"), mine.length ? notInArray(outbox.seq, mine) : undefined, fence)),
    );
  };

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
      // Not fenced: at worst a row another leader took is sent once more (consumers drop duplicates).
      await persist("release", () =>
        db.autocommit((q) =>
          q.update(outbox).set({ state: "pending", attempts: sql`${outbox.attempts} + 1`, lastError }).where(anyOf(outbox.seq, seqs, "bigint")),
        ),
      );
      for (const seq of seqs) held.delete(seq);
      await Bun.sleep(retryDelayMs(failures));
      kick(); // the released rows are pending again: don't wait for a nudge or the safety-net poll
      return;
    }
    failures = 0;
    opts.onPublished?.(records);
    if (stopped) return; // confirmed after stop(): sent again by the next leader, and dropped as a duplicate
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

  // Not fenced: the bus has these records, whoever leads now.
  const markPublished = (seqs: number[]) =>
    db.autocommit((q) => q.update(outbox).set({ state: "published", publishedAt: sql`now()` }).where(anyOf(outbox.seq, seqs, "bigint")));

  /** Claims and hands over batches while the bus takes more publishes in flight. */
  const fill = async () => {
    lastPass = Date.now();
    blocked = false;
    if (!leading()) return;
    try {
      if (orphansPossible) {
        await reclaimOrphans();
        orphansPossible = false;
      }
      while (!stopped && leading()) {
        if (inFlight >= bus.publishConcurrency) {
          blocked = true;
          return;
        }
        const rows = await claim(BATCH);
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
    } catch (err) {
      orphansPossible = true;
      // The lock's connection is suspect: give the lead up; whoever takes it next reclaims.
      if (elected) await resign("claim failed");
      throw err;
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
        if (elected) return; // the election timer takes the lead again (or another relay does)
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

  if (elected) {
    await elect();
    scheduleElection();
  }
  kick();
  schedule();
  return {
    nudge: () => (leading() ? kick() : notifyLeader()),
    leading,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      if (electTimer) clearTimeout(electTimer);
      await electing;
      await running;
      // What the bus confirmed so far is marked now (one try); the rest is sent again by the next leader.
      if (markTimer) clearTimeout(markTimer);
      await marking;
      if (confirmed.length > 0) await markPublished(confirmed.splice(0)).catch(() => {});
      await resign("stopping");
      await standby?.session.close().catch(() => {});
      standby = null;
    },
  };
}
