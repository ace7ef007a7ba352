/**
 * Runs a batch's fresh messages through the module's handlers inside its transaction: a run of
 * one type through its batch handler where it has one, else each message through its own handler,
 * each message in a `process` span and under its request id; then the outbox rows they enqueued.
 */
import type { SQL } from "drizzle-orm";
import type { Message } from "../contracts";
import { allInOne } from "../db/bulk";
import type { Executor } from "../db/database";
import { outsideRequest, withRequestId } from "../request-context";
import { activeContext, type Context, carrierOfSpan, failed, tracingOn, withActiveSpan } from "../tracing/spans";
import { batchHandlerFor, type Consumers, handlerFor } from "./consumer-handlers";
import { processSpan, type SpanSource, spanIds } from "./consumer-spans";
import type { OutboxWriter } from "./outbox";

/** A message whose handler ran: how long it took (ms), and the ids of its span (tracing on). */
export type Applied = { ms: number; trace?: { trace_id: string; span_id: string } };

/** What dispatching needs: the handlers, the outbox, whose spans, and each message's topic (for its span). */
export interface DispatchOptions {
  consumers: Consumers;
  outbox: OutboxWriter;
  source: SpanSource;
  topicOf: Map<string, string>;
}

/** One dispatch under way: where enqueued messages wait, the batch's span, and what each message took. */
interface Dispatching extends DispatchOptions {
  staged: ReturnType<OutboxWriter["staging"]>;
  batch: Context;
  took: Map<string, Applied>;
}

/** Runs the handlers of `fresh` (in delivery order) in `tx`, then writes their outbox rows; returns what each took, by id. */
export async function dispatch(tx: Executor, fresh: Message[], opts: DispatchOptions): Promise<Map<string, Applied>> {
  const d: Dispatching = { ...opts, staged: opts.outbox.staging(), batch: activeContext(), took: new Map() };
  /** A batch handler's writes, run before whatever comes next (or with the outbox insert at the end). */
  let writes: SQL[] = [];
  for (let i = 0; i < fresh.length; ) {
    if (writes.length > 0) await tx.execute(allInOne(writes.splice(0)));
    const m = fresh[i] as Message;
    const many = batchHandlerFor(opts.consumers, m);
    if (many) {
      let end = i + 1;
      while (end < fresh.length && (fresh[end] as Message).type === m.type) end++;
      writes = await runBatch(tx, d, many, fresh.slice(i, end));
      i = end;
    } else {
      await runOne(tx, d, m);
      i += 1;
    }
  }
  await d.staged.flush(tx, writes);
  return d.took;
}

/**
 * A run of one type through its batch handler; resolves with its writes. Each message of the
 * run is in its own span; the handler sees the span as the message's trace, so what it writes
 * for a message (withCause) continues that message's trace.
 */
async function runBatch(
  tx: Executor,
  d: Dispatching,
  many: NonNullable<ReturnType<typeof batchHandlerFor>>,
  run: Message[],
): Promise<SQL[]> {
  const started = performance.now();
  const spans = run.map((r) => processSpan(d.source, r, d.topicOf.get(r.id) ?? "", d.batch));
  const traced = tracingOn() ? run.map((r, k) => ({ ...r, ...carrierOfSpan(spans[k]) }) as Message) : run;
  let writes: SQL[];
  try {
    writes = await outsideRequest(() => many(tx, traced, d.staged.enqueue));
  } catch (err) {
    for (const span of spans) failed(span, err);
    throw err;
  } finally {
    for (const span of spans) span?.end();
  }
  const each = (performance.now() - started) / run.length;
  for (const [k, r] of run.entries()) d.took.set(r.id, { ms: each, trace: spanIds(spans[k]) });
  return writes;
}

/** One message through its handler, under its request id and span: what the handler enqueues and logs carries them on. */
async function runOne(tx: Executor, d: Dispatching, m: Message): Promise<void> {
  const started = performance.now();
  const handler = handlerFor(d.consumers, m) as NonNullable<ReturnType<typeof handlerFor>>;
  const span = processSpan(d.source, m, d.topicOf.get(m.id) ?? "", d.batch);
  try {
    await withActiveSpan(span, () => withRequestId(m.request_id, () => handler(tx, m, d.staged.enqueue)));
  } catch (err) {
    failed(span, err);
    throw err;
  } finally {
    span?.end();
  }
  d.took.set(m.id, { ms: performance.now() - started, trace: spanIds(span) });
}
