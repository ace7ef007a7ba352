/**
 * Turns batches of bus records into idempotent handler calls in one transaction per batch:
 * one statement records the batch in the inbox and finds the duplicates, the handlers run for
 * the fresh messages, their outbox rows are written together. A batch that fails is applied
 * again one record at a time, so a poison record is dead-lettered alone.
 */
import { type SQL, sql } from "drizzle-orm";
import type { BatchHandler, BusRecord } from "../bus/bus";
import { BAD_SIGNATURE, type RecordSigner } from "../bus/signing";
import { type Message, type MessageOf, type MessageType, type ParseResult, parseMessage } from "../contracts";
import { rowsOf } from "../db/rows";
import { allInOne, insertMany } from "../db/bulk";
import { type Database, type Executor, isConnectionError } from "../db/database";
import { causeChain } from "../errors";
import type { LogFields, Logger } from "../log";
import { outsideRequest, withRequestId } from "../request-context";
import {
  activeContext,
  type Context,
  carrierOfSpan,
  contextOf,
  failed,
  inSpan,
  linkTo,
  messagingSystem,
  type Span,
  SpanKind,
  startSpan,
  traceIdsOf,
  tracingOn,
  withActiveSpan,
} from "../tracing/spans";
import type { Enqueue, OutboxWriter } from "./outbox";
import type { MessagingTables } from "./tables";

/** What a module reacts to: message type -> effect, run inside the batch's transaction. */
type MessageHandlers = {
  [T in MessageType]?: (tx: Executor, message: MessageOf<T>, enqueue: Enqueue) => Promise<void>;
};

/**
 * Set-based handlers: a run of consecutive fresh messages of one type, in delivery order, decided
 * together and written with a few statements whatever their number. Each enqueued message
 * should carry the request id of the message that caused it (withCause).
 */
type BatchHandlers = {
  /**
   * Reads and decides in `tx`; resolves with its writes, as statements the consumer runs in one
   * (allInOne: on one snapshot, so they touch different tables), joined with the batch's outbox
   * insert when nothing comes after the run in the batch.
   */
  [T in MessageType]?: (tx: Executor, messages: MessageOf<T>[], enqueue: Enqueue) => Promise<SQL[]>;
};

/** A module's consumer: its handlers, and the rows a batch will write, locked up front. */
export interface Consumers {
  /** The types consumed, each with its handler for one message (redrives and a batch's fallback use them too). */
  handlers: MessageHandlers;
  /** Where a type has one, runs of its messages go to it instead of `handlers` one by one. */
  batchHandlers?: BatchHandlers;
  /**
   * Locks, in one statement and a fixed order, the rows the batch's fresh messages will update,
   * so that two batches touching the same rows in different orders cannot deadlock.
   */
  lockRows?: (tx: Executor, messages: Message[]) => Promise<void>;
  /**
   * True when `lockRows` locks one row per order the batch names (every order whose messages
   * change anything): that already makes one order's messages take turns, so the per-order
   * advisory locks are left out (one statement less per batch).
   */
  lockRowsPerOrder?: boolean;
}

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

/** The most messages a batch's span links to (a batch can hold thousands). */
const MAX_LINKS = 128;

/** A span's ids for a log line. */
const spanIds = (span: Span | undefined) => (span ? traceIdsOf(span) : undefined);

/** A handler that failed this many times on one message (database reachable) is recorded as dead. */
export const MAX_ATTEMPTS = 5;

type Parsed = { record: BusRecord; message: Message | null; error: string | null };
/** A message whose handler ran: how long it took (ms), and the ids of its span (tracing on). */
type Applied = { ms: number; trace?: { trace_id: string; span_id: string } };
type Delivery = { message: Message; topic: string };
/** What became of one message: its step is logged once the batch committed. */
type StepOutcome = "applied" | "duplicate" | "ignored" | "dead-lettered" | "failed";

/** The most specific text of an error: a driver's own message rather than the query wrapping it. */
export function errorText(err: unknown): string {
  const e = causeChain(err).findLast((c) => c instanceof Error) ?? err;
  return String((e as Error | null)?.message ?? e).slice(0, 1000);
}

/** Builds the batch handler for one module's consumer group. */
export function createMessageConsumer(opts: {
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
}): MessageConsumer {
  const { db, group, tables, outbox, log } = opts;
  const signer = opts.signer ?? null;
  const system = opts.system ?? messagingSystem("memory");
  const { handlers, batchHandlers, lockRows, lockRowsPerOrder } = opts.consumers;
  const stats: ConsumerStats = { processed: 0, duplicates: 0, ignored: 0, dead: 0, failures: 0, batches: 0 };
  const attempts = new Map<string, number>();

  const deadRow = (record: BusRecord, error: string) => ({
    topic: record.topic,
    key: record.key,
    value: record.value.slice(0, 100_000),
    headers: record.headers,
    error,
  });

  const handlerFor = (m: Message) => handlers[m.type] as ((tx: Executor, m: Message, e: Enqueue) => Promise<void>) | undefined;

  /**
   * A `process <topic>` span for one message's handling (tracing on), child of the span that
   * wrote the message (its envelope's traceparent), linked to the batch's span (`batch`).
   */
  const processSpan = (m: Message, topic: string, batch: Context): Span | undefined =>
    tracingOn() ? startSpan(`process ${topic}`, {
      kind: SpanKind.CONSUMER,
      parent: contextOf(m),
      links: linkTo(batch),
      attributes: {
        "messaging.system": system,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": topic,
        "messaging.consumer.group.name": group,
        "messaging.message.id": m.id,
        "shop.order_id": m.order_id,
        "shop.message_type": m.type,
      },
    }) : undefined;

  /** Records `wanted` in the inbox and runs the handlers of the messages it had not seen; returns what each that ran took (by id). */
  const applyFresh = async (tx: Executor, wanted: Delivery[]): Promise<Map<string, Applied>> => {
    const took = new Map<string, Applied>();
    if (wanted.length === 0) return took;
    const rows = wanted.map(({ message: m, topic }) => ({ messageId: m.id, type: m.type, topic }));
    const record = insertMany(tables.inbox, ["messageId", "type", "topic"], rows, sql`on conflict do nothing returning ${sql.identifier("message_id")}`);
    // Messages about one order, from any topic, take turns within this consumer group: on
    // PostgreSQL, the statement that records the batch in the inbox also takes an advisory lock
    // per order, in a fixed order (no deadlock), once it found a fresh message. (PGlite has one
    // connection: its transactions never overlap, so there is nothing to lock.)
    const locking = db.driver === "postgres" && !lockRowsPerOrder;
    const keys = locking ? [...new Set(wanted.map((w) => `${group}:${w.message.order_id}`))] : [];
    const inserted = rowsOf(
      await tx.execute(
        locking
          ? sql`with fresh as (${record}) select message_id as id, (select count(*) from (select pg_advisory_xact_lock(h) from (select distinct hashtextextended(k, 0) as h from unnest(${sql.param(keys)}::text[]) as k order by h) as o) as l) as locks from fresh`
          : sql`with fresh as (${record}) select message_id as id from fresh`,
      ),
    );
    const insertedIds = new Set(inserted.map((r) => String(r.id)));
    const fresh = wanted.map((w) => w.message).filter((m) => insertedIds.has(m.id));
    if (fresh.length === 0) return took;
    if (db.driver === "postgres") await lockRows?.(tx, fresh);
    const topicOf = new Map<string, string>(tracingOn() ? wanted.map((w) => [w.message.id, w.topic]) : []);
    const batchContext = activeContext();
    const staged = outbox.staging();
    /** A batch handler's writes, run before whatever comes next (or with the outbox insert at the end). */
    let writes: SQL[] = [];
    for (let i = 0; i < fresh.length; ) {
      if (writes.length > 0) await tx.execute(allInOne(writes.splice(0)));
      const m = fresh[i] as Message;
      const started = performance.now();
      const many = batchHandlers?.[m.type] as ((tx: Executor, ms: Message[], e: Enqueue) => Promise<SQL[]>) | undefined;
      if (many) {
        let end = i + 1;
        while (end < fresh.length && (fresh[end] as Message).type === m.type) end++;
        const run = fresh.slice(i, end);
        // Each message of the run in its own span; the handler sees the span as the message's
        // trace, so what it writes for a message (withCause) continues that message's trace.
        const spans = run.map((r) => processSpan(r, topicOf.get(r.id) ?? "", batchContext));
        const traced = tracingOn() ? run.map((r, k) => ({ ...r, ...carrierOfSpan(spans[k]) }) as Message) : run;
        try {
          writes = await outsideRequest(() => many(tx, traced, staged.enqueue));
        } catch (err) {
          for (const span of spans) failed(span, err);
          throw err;
        } finally {
          for (const span of spans) span?.end();
        }
        const each = (performance.now() - started) / run.length;
        for (const [k, r] of run.entries()) took.set(r.id, { ms: each, trace: spanIds(spans[k]) });
        i = end;
        continue;
      }
      const handler = handlerFor(m) as NonNullable<ReturnType<typeof handlerFor>>;
      const span = processSpan(m, topicOf.get(m.id) ?? "", batchContext);
      try {
        // Under the message's request id and span: what the handler enqueues and logs carries them on.
        await withActiveSpan(span, () => withRequestId(m.request_id, () => handler(tx, m, staged.enqueue)));
      } catch (err) {
        failed(span, err);
        throw err;
      } finally {
        span?.end();
      }
      took.set(m.id, { ms: performance.now() - started, trace: spanIds(span) });
      i += 1;
    }
    await staged.flush(tx, writes);
    return took;
  };

  /**
   * Applies `batch` in one transaction, in a `consume <topic>` span (tracing on): the child of
   * its message's span when the batch holds one message, else a root linked to every message's.
   * Resolves with the counts to add once it committed.
   */
  const apply = (batch: Parsed[]) => {
    if (!tracingOn()) return applyBatch(batch);
    const messages = batch.flatMap((p) => (p.message ? [p.message] : []));
    const topic = batch[0]?.record.topic ?? "";
    return inSpan(
      `consume ${topic}`,
      {
        kind: SpanKind.CONSUMER,
        parent: messages.length === 1 ? contextOf(messages[0]) : contextOf(null),
        links: messages.length === 1 ? [] : messages.slice(0, MAX_LINKS).flatMap((m) => linkTo(contextOf(m))),
        attributes: {
          "messaging.system": system,
          "messaging.operation.type": "process",
          "messaging.operation.name": "consume",
          "messaging.destination.name": topic,
          "messaging.consumer.group.name": group,
          "messaging.batch.message_count": batch.length,
        },
      },
      () => applyBatch(batch),
    );
  };

  const applyBatch = (batch: Parsed[]) =>
    db.transaction(async (tx) => {
      const dead = batch.filter((p) => p.error !== null);
      if (dead.length > 0) await tx.insert(tables.deadLetters).values(dead.map((p) => deadRow(p.record, p.error as string)));
      const wanted = new Map<string, Delivery>();
      for (const p of batch) {
        if (p.message && handlerFor(p.message) && !wanted.has(p.message.id)) wanted.set(p.message.id, { message: p.message, topic: p.record.topic });
      }
      const known = batch.filter((p) => p.message && handlerFor(p.message)).length;
      const ignored = batch.length - dead.length - known;
      const applied = await applyFresh(tx, [...wanted.values()]);
      return { processed: applied.size, duplicates: known - applied.size, ignored, dead, applied };
    });

  const applyIn = async (tx: Executor, message: Message, topic: string): Promise<ApplyOutcome> => {
    if (!handlerFor(message)) return "ignored";
    return (await applyFresh(tx, [{ message, topic }])).size > 0 ? "applied" : "duplicate";
  };

  const parse = (record: BusRecord): ParseResult =>
    signer && !signer.verify(record) ? { ok: false, error: BAD_SIGNATURE } : parseMessage(record.value);

  const handle: BatchHandler = async (records) => {
    const batch: Parsed[] = records.map((record) => {
      const parsed = parse(record);
      return parsed.ok ? { record, message: parsed.message, error: null } : { record, message: null, error: parsed.error };
    });
    try {
      const done = await apply(batch);
      stats.batches += 1;
      stats.processed += done.processed;
      stats.duplicates += done.duplicates;
      stats.ignored += done.ignored;
      stats.dead += done.dead.length;
      for (const p of done.dead) opts.onDeadLetter?.(p.record.topic);
      for (const p of done.dead) log.warn("dead letter", { ...stepFields(p, "dead-lettered"), error: p.error });
      logSteps(batch, done.applied);
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
    log.warn("handler failed", { ...stepFields(p, "failed"), attempt: n, err });
    if (n < MAX_ATTEMPTS) return 0;
    attempts.delete(id);
    const error = `handler failed ${n} times: ${errorText(err)}`;
    await db.transaction((tx) => tx.insert(tables.deadLetters).values(deadRow(p.record, error)));
    stats.dead += 1;
    opts.onDeadLetter?.(p.record.topic);
    log.warn("dead letter", { ...stepFields(p, "dead-lettered"), error });
    return 1;
  };

  /** The fields of a saga step's line: which message, which order, which request, what became of it. */
  const stepFields = (p: Parsed, outcome: StepOutcome, ms?: number): LogFields => {
    const m = p.message;
    const fields: LogFields = { outcome, group, topic: p.record.topic };
    if (m) Object.assign(fields, { step: `${m.type} -> ${group}`, type: m.type, order_id: m.order_id, message_id: m.id, request_id: m.request_id });
    else fields.key = p.record.key;
    if (ms !== undefined) fields.duration_ms = Math.round(ms * 10) / 10;
    return fields;
  };

  /** One line per message of a committed batch (dead letters have their own): applied at info, the rest at debug. */
  const logSteps = (batch: Parsed[], applied: Map<string, Applied>) => {
    for (const p of batch) {
      if (!p.message) continue;
      const done = applied.get(p.message.id);
      applied.delete(p.message.id); // the same id again in this batch is a duplicate
      if (done !== undefined) log.info("saga step", { ...stepFields(p, "applied", done.ms), ...done.trace });
      else log.debug("saga step", stepFields(p, handlerFor(p.message) ? "duplicate" : "ignored"));
    }
  };

  return { handle, stats, applyIn, parse };
}
