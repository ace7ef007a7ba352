/**
 * Moves committed outbox rows onto the bus, oldest first, at-least-once. A row is claimed
 * (`in_flight`) in one statement, handed to the bus, and marked `published` only once the bus
 * says it is durable downstream; a row whose publish failed goes back to `pending`. Marks are
 * written together, with the next claim (the same statement) or at most MARK_AFTER_MS later: a
 * crash before that only sends a row twice, and consumers drop the duplicate. Published rows are
 * pruned by the module's retention (retention.ts).
 * One relay per outbox claims at a time: relay-leader.ts elects it (ADR 0010).
 */
import { and, asc, eq, inArray, notInArray, type SQL, sql } from "drizzle-orm";
import type { Bus, BusRecord } from "../bus/bus";
import { retryDelayMs } from "../bus/bus";
import { type RecordSigner, SIGNATURE_HEADER } from "../bus/signing";
import { anyOf } from "../db/bulk";
import type { Database, Executor } from "../db/database";
import type { Logger } from "../log";
import { createLoop, type Loop } from "../loop";
import { contextOf, failed, linkTo, messagingSystem, type Span, SpanKind, startSpan, type TraceCarrier, tracingOn } from "../tracing/spans";
import { countClaim, countMark, work } from "../work-counters";
import { RelayLeader } from "./relay-leader";
import type { MessagingTables } from "./tables";

export { outboxLockKey } from "./relay-leader";

const BATCH = 200;
/**
 * How long confirmed rows wait to be marked published on their own. Until then they ride on the
 * next claim (one statement claims and marks): at any steady rate above one batch a second, no
 * statement and no timer of its own.
 */
const MARK_AFTER_MS = 1000;

/** A running relay. */
export interface OutboxRelay {
  /** Asks for a pass soon (called after a transaction that enqueued messages committed). */
  nudge(): void;
  /** True while this relay is the one that claims its outbox's rows. */
  leading(): boolean;
  /** Stops claiming and gives up the lead; rows still in flight stay `in_flight` and are sent again by the next leader. */
  stop(): Promise<void>;
}

/** What startOutboxRelay needs. */
interface RelayOptions {
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
}

type Row = MessagingTables["outbox"]["$inferSelect"];

/** Starts relaying `tables.outbox` to `bus`: on nudges, and every `pollMs` when nothing nudged. */
export async function startOutboxRelay(opts: RelayOptions): Promise<OutboxRelay> {
  const relay = new Relay(opts);
  await relay.start();
  return {
    nudge: () => relay.nudge(),
    leading: () => relay.leader.leading(),
    stop: () => relay.stop(),
  };
}

/** The relay loop: passes that claim and send batches, and the marks of what the bus confirmed. */
class Relay {
  readonly leader: RelayLeader;
  private readonly opts: RelayOptions;
  private readonly outbox: MessagingTables["outbox"];
  private readonly signer: RecordSigner | null;
  private stopped = false;
  /** The passes: one at a time, a kick during one makes one more right after it. */
  private readonly passes: Loop;
  /** Every `pollMs`: a pass if none started meanwhile (a safety net for rows no nudge announced). */
  private readonly safetyNet: Loop;
  private inFlight = 0;
  private failures = 0;
  private lastPass = 0;
  /** Claims stopped because the bus had enough in flight: claim again when a send finishes. */
  private blocked = false;
  private confirmed: number[] = [];
  private marking: Promise<void> | null = null;
  private markTimer: Timer | null = null;
  /** Rows this relay claimed and has not yet released or marked published. */
  private readonly held = new Set<number>();
  /** The claim, prepared once per connection it runs on (see claimQuery). */
  private readonly claims = new WeakMap<Executor, ReturnType<Relay["buildClaim"]>>();
  /**
   * Rows may be `in_flight` that no running relay holds: left by a previous leader (this relay
   * just took the lead), or by a claim of this relay that failed (its UPDATE may have committed
   * with the answer lost). The next pass returns such rows to `pending`.
   */
  private orphansPossible: boolean;

  constructor(opts: RelayOptions) {
    this.opts = opts;
    this.outbox = opts.tables.outbox;
    this.signer = opts.signer ?? null;
    this.leader = new RelayLeader({
      db: opts.db,
      outbox: opts.tables.outbox,
      log: opts.log,
      pollMs: opts.pollMs,
      electEveryMs: opts.electEveryMs,
      onLead: () => {
        this.orphansPossible = true;
        this.kick();
      },
      wake: () => this.kick(),
    });
    this.orphansPossible = !this.leader.elected;
    this.passes = createLoop({
      run: () => this.pass(),
      failed: (err) => opts.log.warn("outbox relay pass failed", { err }),
      periodic: false,
    });
    this.safetyNet = createLoop({
      run: async () => {
        work.timer_wakeups += 1;
        // A safety net for rows no nudge announced (another process, a lost wake-up).
        if (Date.now() - this.lastPass >= opts.pollMs) this.kick();
      },
      every: opts.pollMs,
      failed: () => {},
      // Its wake-up counts, but not the pass it may start: the claims count on their own.
      periodic: false,
    });
  }

  /** Takes part in the election (PostgreSQL), then makes a first pass and starts the safety-net poll. */
  async start(): Promise<void> {
    if (this.leader.elected) await this.leader.start();
    this.kick();
    this.safetyNet.runIn(this.opts.pollMs);
  }

  /** A leader passes again; a standby tells the leader. */
  nudge(): void {
    if (this.leader.leading()) this.kick();
    else this.leader.notify();
  }

  /** Stops passes and elections, marks what the bus confirmed (one try), then gives the lead up. */
  async stop(): Promise<void> {
    this.stopped = true;
    const passesDone = this.passes.stop();
    await this.safetyNet.stop();
    await this.leader.stopElecting();
    await passesDone;
    // What the bus confirmed so far is marked now (one try); the rest is sent again by the next leader.
    if (this.markTimer) clearTimeout(this.markTimer);
    await this.marking;
    if (this.confirmed.length > 0) await this.markPublished(this.confirmed.splice(0)).catch(() => {});
    await this.leader.close();
  }

  /** Starts a pass, or asks the running one to go again. */
  private kick(): void {
    this.passes.runNow();
  }

  /** One pass; a failed one is tried again after a backoff (PGlite) or once the lead is taken again (PostgreSQL). */
  private async pass(): Promise<void> {
    try {
      await this.fill();
    } catch (err) {
      if (this.stopped) return;
      this.failures += 1;
      this.opts.log.warn("outbox relay pass failed", { failures: this.failures, err });
      if (this.leader.elected) return; // the election timer takes the lead again (or another relay does)
      await Bun.sleep(retryDelayMs(this.failures));
      this.kick();
    }
  }

  /** Claims and hands over batches while the bus takes more publishes in flight. */
  private async fill(): Promise<void> {
    this.lastPass = Date.now();
    this.blocked = false;
    if (!this.leader.leading()) return;
    try {
      if (this.orphansPossible) {
        await this.reclaimOrphans();
        this.orphansPossible = false;
      }
      while (!this.stopped && this.leader.leading()) {
        if (this.inFlight >= this.opts.bus.publishConcurrency) {
          this.blocked = true;
          return;
        }
        // What the bus confirmed so far is marked published by the claim itself.
        const marks = this.confirmed.splice(0);
        let rows: Row[];
        try {
          rows = await this.claim(BATCH, marks);
        } catch (err) {
          // Not marked: the timer (or a later claim) marks them.
          this.confirmed.unshift(...marks);
          if (marks.length > 0) this.markTimer ??= setTimeout(() => void this.markConfirmed(), MARK_AFTER_MS);
          throw err;
        }
        countClaim(rows.length, marks.length);
        for (const seq of marks) this.held.delete(seq);
        if (this.confirmed.length === 0 && this.markTimer) {
          clearTimeout(this.markTimer);
          this.markTimer = null;
        }
        if (rows.length === 0) return;
        for (const r of rows) this.held.add(r.seq);
        this.inFlight += 1;
        void this.send(rows).finally(() => {
          this.inFlight -= 1;
          if (this.blocked) this.kick();
        });
        // A short batch took everything committed so far; later commits nudge again.
        if (rows.length < BATCH) return;
      }
    } catch (err) {
      this.orphansPossible = true;
      // The lock's connection is suspect: give the lead up; whoever takes it next reclaims.
      if (this.leader.elected) await this.leader.resign("claim failed");
      throw err;
    }
  }

  /**
   * Claims up to `limit` pending rows, oldest first, and marks `marks` (rows the bus confirmed)
   * published in the same statement. Those are `in_flight`, the claimed ones `pending`: the two
   * updates never touch the same row. The mark is not fenced (the bus has those records,
   * whoever leads now); one text whatever the number of marks.
   */
  private claim(limit: number, marks: number[]): Promise<Row[]> {
    return this.leader.claimWith((q, fence) => this.claimQuery(q, fence).execute({ limit, marks }));
  }

  /**
   * The claim as a prepared query of `q` (the database, or the lead's session): drizzle builds
   * its text once per session, not on every claim.
   */
  private claimQuery(q: Executor, fence: SQL | undefined) {
    let query = this.claims.get(q);
    if (!query) this.claims.set(q, (query = this.buildClaim(q, fence)));
    return query;
  }

  private buildClaim(q: Executor, fence: SQL | undefined) {
    const outbox = this.outbox;
    return q
      .with(
        q
          .$with("marked", {})
          .as(
            sql`update ${outbox} set ${sql.identifier(outbox.state.name)} = 'published', ${sql.identifier(outbox.publishedAt.name)} = now() where ${outbox.seq} = any(${sql.placeholder("marks")}::bigint[])`,
          ),
      )
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
            .limit(sql.placeholder("limit"))
            .for("update", { skipLocked: true }),
        ),
      )
      .returning()
      .prepare("outbox_claim");
  }

  /** Returns rows `in_flight` that this relay does not hold to `pending` (fenced like a claim). */
  private reclaimOrphans() {
    const outbox = this.outbox;
    const mine = [...this.held];
    return this.leader.claimWith((q, fence) =>
      q
        .update(outbox)
        .set({ state: "pending" })
        .where(and(eq(outbox.state, "in_flight"), mine.length ? notInArray(outbox.seq, mine) : undefined, fence)),
    );
  }

  /** Publishes claimed rows; confirmed ones wait to be marked published, failed ones go back to `pending`. */
  private async send(rows: Row[]): Promise<void> {
    rows.sort((a, b) => a.seq - b.seq);
    const seqs = rows.map((r) => r.seq);
    const records = rows.map((r) => this.record(r));
    const spans = tracingOn() ? this.sendSpans(rows) : [];
    try {
      await this.opts.bus.publish(records);
    } catch (err) {
      for (const span of spans) failed(span, err);
      for (const span of spans) span?.end();
      if (this.stopped) return;
      await this.release(seqs, err);
      return;
    }
    for (const span of spans) span?.end();
    this.failures = 0;
    this.opts.onPublished?.(records);
    if (this.stopped) return; // confirmed after stop(): sent again by the next leader, and dropped as a duplicate
    this.confirmed.push(...seqs);
    this.markTimer ??= setTimeout(() => void this.markConfirmed(), MARK_AFTER_MS);
  }

  /**
   * Tracing on: a `send` span for the batch (a root, linked to each record's trace), and one per
   * record in its own message's trace (child of the span that wrote it), so that an order's trace
   * shows the relay on its time axis. The caller ends them when the bus has answered.
   */
  private sendSpans(rows: Row[]): (Span | undefined)[] {
    const topics = [...new Set(rows.map((r) => r.topic))];
    const system = messagingSystem(this.opts.bus.kind);
    const batch = startSpan(`send ${topics.length === 1 ? topics[0] : "batch"}`, {
      kind: SpanKind.PRODUCER,
      parent: contextOf(null),
      links: rows.slice(0, 128).flatMap((r) => linkTo(contextOf(r.envelope as TraceCarrier))),
      attributes: {
        "messaging.system": system,
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.batch.message_count": rows.length,
        ...(topics.length === 1 ? { "messaging.destination.name": topics[0] } : {}),
      },
    });
    const each = rows.map((r) =>
      startSpan(`send ${r.topic}`, {
        kind: SpanKind.PRODUCER,
        parent: contextOf(r.envelope as TraceCarrier),
        links: batch ? [{ context: batch.spanContext() }] : [],
        attributes: {
          "messaging.system": system,
          "messaging.operation.type": "send",
          "messaging.operation.name": "send",
          "messaging.destination.name": r.topic,
          "messaging.message.id": r.id,
          "shop.order_id": r.key,
          "shop.message_type": r.type,
          "shop.outbox.attempts": r.attempts,
        },
      }),
    );
    return [batch, ...each];
  }

  /** The bus record of an outbox row, signed when a signer is set. */
  private record(r: Row): BusRecord {
    const record: BusRecord = {
      topic: r.topic,
      key: r.key,
      value: JSON.stringify(r.envelope),
      headers: { "message-id": r.id, "message-type": r.type },
    };
    if (this.signer) record.headers[SIGNATURE_HEADER] = this.signer.sign(record);
    return record;
  }

  /** A publish failed: the rows go back to `pending` (an attempt more, the error kept), and a pass follows after a backoff. */
  private async release(seqs: number[], err: unknown): Promise<void> {
    const outbox = this.outbox;
    this.failures += 1;
    this.opts.log.warn("outbox: publish failed; will retry", { rows: seqs.length, failures: this.failures, err });
    const lastError = String((err as Error).message ?? err).slice(0, 1000);
    // Not fenced: at worst a row another leader took is sent once more (consumers drop duplicates).
    await this.persist("release", () =>
      this.opts.db.autocommit((q) =>
        q
          .update(outbox)
          .set({ state: "pending", attempts: sql`${outbox.attempts} + 1`, lastError })
          .where(anyOf(outbox.seq, seqs, "bigint")),
      ),
    );
    for (const seq of seqs) this.held.delete(seq);
    work.relay_rows_released += seqs.length;
    await Bun.sleep(retryDelayMs(this.failures));
    this.kick(); // the released rows are pending again: don't wait for a nudge or the safety-net poll
  }

  /** Marks every confirmed row published in one statement. */
  private async markConfirmed(): Promise<void> {
    this.markTimer = null;
    await this.marking;
    const seqs = this.confirmed;
    this.confirmed = [];
    if (seqs.length === 0) return;
    this.marking = this.persist("mark published", () => this.markPublished(seqs));
    await this.marking;
    for (const seq of seqs) this.held.delete(seq);
  }

  // Not fenced: the bus has these records, whoever leads now.
  private markPublished(seqs: number[]) {
    const outbox = this.outbox;
    countMark(seqs.length);
    return this.opts.db.autocommit((q) =>
      q
        .update(outbox)
        .set({ state: "published", publishedAt: sql`now()` })
        .where(anyOf(outbox.seq, seqs, "bigint")),
    );
  }

  /** Retries `fn` with backoff until it succeeds or the relay stops: rows must not stay claimed. */
  private async persist(what: string, fn: () => Promise<unknown>): Promise<void> {
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        await fn();
        return;
      } catch (err) {
        this.opts.log.warn(`outbox: ${what} failed; retrying`, { attempt, err });
        await Bun.sleep(retryDelayMs(attempt));
      }
    }
  }
}
