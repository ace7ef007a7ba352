/**
 * Turns batches of bus records into idempotent handler calls in one transaction per batch:
 * one statement records the batch in the inbox and finds the duplicates, the handlers run for
 * the fresh messages, their outbox rows are written together. A batch that fails is applied
 * again one record at a time, so a poison record is dead-lettered alone.
 */
import type { BatchHandler, BusRecord } from "../bus/bus";
import { BAD_SIGNATURE, type RecordSigner } from "../bus/signing";
import { type Message, type ParseResult, parseMessage } from "../contracts";
import { type Database, type Executor, isConnectionError } from "../db/database";
import { causeChain } from "../errors";
import type { Logger } from "../log";
import { messagingSystem, tracingOn } from "../tracing/spans";
import { type Applied, dispatch } from "./consumer-dispatch";
import { type Consumers, handlerFor } from "./consumer-handlers";
import { type Delivery, recordInInbox } from "./consumer-inbox";
import { inConsumeSpan, type SpanSource } from "./consumer-spans";
import { logSteps, type Parsed, stepFields } from "./consumer-steps";
import type { OutboxWriter } from "./outbox";
import type { MessagingTables } from "./tables";

export type { Consumers };

/** Counters a consumer keeps, read by /metrics. */
interface ConsumerStats {
  processed: number;
  duplicates: number;
  ignored: number;
  dead: number;
  failures: number;
  batches: number;
}

/** What applying one message came to: its effect ran, the inbox had it already, or no handler wants it. */
export type ApplyOutcome = "applied" | "duplicate" | "ignored";

/** One module's consumer group. */
export interface MessageConsumer {
  /** The bus's batch handler. */
  handle: BatchHandler;
  stats: ConsumerStats;
  /** Applies `message` (read from `topic`) inside `tx` exactly as a delivery would: inbox, locks, handler, outbox. */
  applyIn(tx: Executor, message: Message, topic: string): Promise<ApplyOutcome>;
  /**
   * Reads a record as a delivery does: its signature first (when records are signed: missing or
   * wrong is the error "bad signature"), then its value. Never throws.
   */
  parse(record: BusRecord): ParseResult;
}

/** A handler that failed this many times on one message (database reachable) is recorded as dead. */
export const MAX_ATTEMPTS = 5;

/** The most specific text of an error: a driver's own message rather than the query wrapping it. */
export function errorText(err: unknown): string {
  const e = causeChain(err).findLast((c) => c instanceof Error) ?? err;
  return String((e as Error | null)?.message ?? e).slice(0, 1000);
}

/** What createMessageConsumer needs. */
interface ConsumerOptions {
  db: Database;
  /** The consumer group; it scopes the per-order lock. */
  group: string;
  tables: MessagingTables;
  outbox: OutboxWriter;
  consumers: Consumers;
  log: Logger;
  /** Checks every record's signature; null or absent: records are not checked. */
  signer?: RecordSigner | null;
  /** Told of each record recorded as dead, once its dead letter committed (for the per-topic counter). */
  onDeadLetter?: (topic: string) => void;
  /** `messaging.system` of its spans (default: the in-process bus's). */
  system?: string;
}

/** Builds the batch handler for one module's consumer group. */
export function createMessageConsumer(opts: ConsumerOptions): MessageConsumer {
  const consumer = new Consumer(opts);
  return {
    handle: (records) => consumer.handle(records),
    stats: consumer.stats,
    applyIn: (tx, message, topic) => consumer.applyIn(tx, message, topic),
    parse: (record) => consumer.parse(record),
  };
}

/** A dead letter's row for `record`. */
const deadRow = (record: BusRecord, error: string) => ({
  topic: record.topic,
  key: record.key,
  value: record.value.slice(0, 100_000),
  headers: record.headers,
  error,
});

/** What applying a batch came to, counted once it committed. */
type BatchOutcome = { processed: number; duplicates: number; ignored: number; dead: Parsed[]; applied: Map<string, Applied> };

/** One consumer group's consumer: a batch in one transaction; a failed one again record by record; retries, then dead letters. */
class Consumer {
  readonly stats: ConsumerStats = { processed: 0, duplicates: 0, ignored: 0, dead: 0, failures: 0, batches: 0 };
  /** Failed tries per message id (reset once it went through). */
  private readonly attempts = new Map<string, number>();
  private readonly signer: RecordSigner | null;
  private readonly source: SpanSource;

  constructor(private readonly opts: ConsumerOptions) {
    this.signer = opts.signer ?? null;
    this.source = { group: opts.group, system: opts.system ?? messagingSystem("memory") };
  }

  /** The bus's batch handler: resolves with how many records (from the first) are done. */
  async handle(records: BusRecord[]): Promise<number> {
    const batch: Parsed[] = records.map((record) => {
      const parsed = this.parse(record);
      return parsed.ok ? { record, message: parsed.message, error: null } : { record, message: null, error: parsed.error };
    });
    try {
      this.committed(batch, await this.apply(batch));
      return records.length;
    } catch (err) {
      this.stats.failures += 1;
      // An unreachable database says nothing about the records: retry them for as long as it takes.
      if (isConnectionError(err)) throw err;
      if (records.length > 1) return this.oneByOne(records);
      return this.giveUpOrRetry(batch[0] as Parsed, err as Error);
    }
  }

  /** Reads a record as a delivery does: its signature first, then its value. Never throws. */
  parse(record: BusRecord): ParseResult {
    return this.signer && !this.signer.verify(record) ? { ok: false, error: BAD_SIGNATURE } : parseMessage(record.value);
  }

  /** Applies `message` (read from `topic`) inside `tx` exactly as a delivery would. */
  async applyIn(tx: Executor, message: Message, topic: string): Promise<ApplyOutcome> {
    if (!this.handles(message)) return "ignored";
    return (await this.applyFresh(tx, [{ message, topic }])).size > 0 ? "applied" : "duplicate";
  }

  private handles(m: Message): boolean {
    return handlerFor(this.opts.consumers, m) !== undefined;
  }

  /** A batch committed: count it, tell of its dead letters, log its steps. */
  private committed(batch: Parsed[], done: BatchOutcome): void {
    const { stats } = this;
    const { log, group } = this.opts;
    stats.batches += 1;
    stats.processed += done.processed;
    stats.duplicates += done.duplicates;
    stats.ignored += done.ignored;
    stats.dead += done.dead.length;
    for (const p of done.dead) this.opts.onDeadLetter?.(p.record.topic);
    for (const p of done.dead) log.warn("dead letter", { ...stepFields(group, p, "dead-lettered"), error: p.error });
    logSteps(log, group, batch, done.applied, (m) => this.handles(m));
    for (const p of batch) if (p.message) this.attempts.delete(p.message.id);
  }

  /** Applies `batch` in one transaction, in a `consume <topic>` span (tracing on); resolves with what it came to. */
  private apply(batch: Parsed[]): Promise<BatchOutcome> {
    const messages = tracingOn() ? batch.flatMap((p) => (p.message ? [p.message] : [])) : [];
    const topic = batch[0]?.record.topic ?? "";
    return inConsumeSpan(this.source, { topic, count: batch.length, messages }, () => this.applyBatch(batch));
  }

  private applyBatch(batch: Parsed[]): Promise<BatchOutcome> {
    return this.opts.db.transaction(async (tx) => {
      const dead = batch.filter((p) => p.error !== null);
      if (dead.length > 0) await tx.insert(this.opts.tables.deadLetters).values(dead.map((p) => deadRow(p.record, p.error as string)));
      const wanted = new Map<string, Delivery>();
      for (const p of batch) {
        if (p.message && this.handles(p.message) && !wanted.has(p.message.id))
          wanted.set(p.message.id, { message: p.message, topic: p.record.topic });
      }
      const known = batch.filter((p) => p.message && this.handles(p.message)).length;
      const ignored = batch.length - dead.length - known;
      const applied = await this.applyFresh(tx, [...wanted.values()]);
      return { processed: applied.size, duplicates: known - applied.size, ignored, dead, applied };
    });
  }

  /** Records `wanted` in the inbox and runs the handlers of the messages it had not seen; returns what each that ran took (by id). */
  private async applyFresh(tx: Executor, wanted: Delivery[]): Promise<Map<string, Applied>> {
    if (wanted.length === 0) return new Map();
    const { db, tables, group, consumers, outbox } = this.opts;
    // Transactions that never overlap (PGlite's one connection) have nothing to lock.
    const lockOrders = db.concurrentTransactions && !consumers.lockRowsPerOrder;
    const fresh = await recordInInbox(tx, { inbox: tables.inbox, group, lockOrders }, wanted);
    if (fresh.length === 0) return new Map();
    if (db.concurrentTransactions) await consumers.lockRows?.(tx, fresh);
    const topicOf = new Map<string, string>(tracingOn() ? wanted.map((w) => [w.message.id, w.topic]) : []);
    return dispatch(tx, fresh, { consumers, outbox, source: this.source, topicOf });
  }

  /** After a failed batch: each record in its own transaction, stopping at one to retry later. */
  private async oneByOne(records: BusRecord[]): Promise<number> {
    for (const [i, record] of records.entries()) {
      // A thrown error (the database went away) keeps what the records before it did.
      const done = await this.handle([record]).catch(() => 0);
      if (done === 0) return i;
    }
    return records.length;
  }

  /** One record failed: retry it later, or after MAX_ATTEMPTS set it aside as dead. */
  private async giveUpOrRetry(p: Parsed, err: Error): Promise<number> {
    const { log, group } = this.opts;
    const id = p.message?.id ?? "";
    const n = (this.attempts.get(id) ?? 0) + 1;
    this.attempts.set(id, n);
    log.warn("handler failed", { ...stepFields(group, p, "failed"), attempt: n, err });
    if (n < MAX_ATTEMPTS) return 0;
    this.attempts.delete(id);
    const error = `handler failed ${n} times: ${errorText(err)}`;
    await this.opts.db.transaction((tx) => tx.insert(this.opts.tables.deadLetters).values(deadRow(p.record, error)));
    this.stats.dead += 1;
    this.opts.onDeadLetter?.(p.record.topic);
    log.warn("dead letter", { ...stepFields(group, p, "dead-lettered"), error });
    return 1;
  }
}
