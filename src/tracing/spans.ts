/**
 * Spans, made by hand (automatic instrumentation does not reach Bun): the helpers the HTTP shell,
 * the database, the outbox, the relay and the consumers use. While tracing is off (no exporter
 * configured: src/tracing/setup.ts) every helper is one boolean test and calls straight through:
 * no span, no context switch, nothing written into a message.
 */
import {
  type Attributes,
  type Context,
  context,
  defaultTextMapGetter,
  defaultTextMapSetter,
  type Link,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  type SpanOptions,
  SpanStatusCode,
  type TimeInput,
  trace,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { setTraceIdsOfLine } from "../log";

export type { Attributes, Context, Span };
export { SpanKind };

/** The instrumentation scope every shop span is made under. */
const SCOPE = "shop";

let on = false;

/** True while a tracer provider is installed (setup.ts); every helper checks it first. */
export const tracingOn = (): boolean => on;

/** Set by setup.ts only. While on, log lines written inside a span carry its ids (activeTraceIds). */
export function setTracingOn(value: boolean): void {
  on = value;
  if (value) setTraceIdsOfLine(activeTraceIds);
}

const tracer = () => trace.getTracer(SCOPE);
const propagator = new W3CTraceContextPropagator();

/** The W3C Trace Context of a span, as it travels in a message (the envelope's fields) or an HTTP header. */
export interface TraceCarrier {
  traceparent?: string;
  tracestate?: string;
}

/** `ctx`'s span as a carrier (empty when `ctx` holds no valid span). */
export function carrierOf(ctx: Context): TraceCarrier {
  const carrier: Record<string, string> = {};
  propagator.inject(ctx, carrier, defaultTextMapSetter);
  const out: TraceCarrier = {};
  if (carrier.traceparent) out.traceparent = carrier.traceparent;
  if (carrier.tracestate) out.tracestate = carrier.tracestate;
  return out;
}

/** The context whose (remote) parent is the span `carrier` names; the root context when it names none. */
export function contextOf(carrier: TraceCarrier | null | undefined): Context {
  if (!carrier?.traceparent) return ROOT_CONTEXT;
  return propagator.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter);
}

/** A link to the span `ctx` holds, if it holds one. */
export function linkTo(ctx: Context, attributes?: Attributes): Link[] {
  const span = trace.getSpan(ctx);
  return span ? [{ context: span.spanContext(), attributes }] : [];
}

/** What a span is made with; `parent` defaults to the active context. */
export interface SpanSpec extends SpanOptions {
  parent?: Context;
}

/**
 * Runs `fn` in a new span (its child spans and log lines see it), ended when `fn` settles; a
 * throw marks it failed. Tracing off: `fn(undefined)` and nothing else.
 */
export async function inSpan<T>(name: string, spec: SpanSpec, fn: (span: Span | undefined) => Promise<T>): Promise<T> {
  if (!on) return fn(undefined);
  const parent = spec.parent ?? context.active();
  const span = tracer().startSpan(name, spec, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (err) {
    failed(span, err);
    throw err;
  } finally {
    span.end();
  }
}

/** Starts a span the caller ends (work that is not one function call); undefined while tracing is off. */
export function startSpan(name: string, spec: SpanSpec): Span | undefined {
  if (!on) return undefined;
  return tracer().startSpan(name, spec, spec.parent ?? context.active());
}

/** Runs `fn` in `ctx` (undefined: the active context, as it is). */
export function inContext<T>(ctx: Context | undefined, fn: () => T): T {
  return ctx ? context.with(ctx, fn) : fn();
}

/** Runs `fn` with `span` as the active span (tracing off or no span: just `fn`). */
export function withActiveSpan<T>(span: Span | undefined, fn: () => T): T {
  if (!span) return fn();
  return context.with(trace.setSpan(context.active(), span), fn);
}

/** A span of no duration (a decision), child of `parent` (default: the active context); returns its context. */
export function markSpan(name: string, spec: SpanSpec & { at?: TimeInput } = {}): Context | undefined {
  if (!on) return undefined;
  const parent = spec.parent ?? context.active();
  const span = tracer().startSpan(name, { ...spec, startTime: spec.at }, parent);
  span.end(spec.at);
  return trace.setSpan(parent, span);
}

/** Marks `span` failed by `err` (an exception event and an error status). */
export function failed(span: Span | undefined, err: unknown): void {
  if (!span) return;
  const e = err instanceof Error ? err : new Error(String(err));
  span.recordException(e);
  span.setStatus({ code: SpanStatusCode.ERROR, message: e.message.slice(0, 300) });
}

/** Marks `span` failed with `message` (an answer that is an error, not an exception). */
export function failedWith(span: Span | undefined, message: string): void {
  span?.setStatus({ code: SpanStatusCode.ERROR, message });
}

/** Runs `fn`, a compensation of order `orderId` (a refund, a release), in a span named `name` (tracing on). */
export function compensation<T>(name: string, orderId: string, fn: () => Promise<T>): Promise<T> {
  if (!on) return fn();
  return inSpan(name, { attributes: { "shop.order_id": orderId, "shop.compensation": true } }, () => fn());
}

/** `messaging.system` of every messaging span (create, send, consume, process) for a bus of `kind`. */
export const messagingSystem = (kind: "memory" | "kafka"): string => (kind === "kafka" ? "kafka" : "shop_memory_bus");

/** The span name of a compensation that undid nothing: a span named "refund order" that refunded nothing misleads. */
export const NOTHING_TO_UNDO_SPAN = "nothing to undo";

/**
 * Tags the compensation being run (the active span, see compensation()) with what it did; one
 * that undid nothing (`nothing_to_undo`, `none_rejected_here`) is renamed NOTHING_TO_UNDO_SPAN.
 */
export function compensationDone(action: string, amount?: number): void {
  if (!on) return;
  const span = trace.getActiveSpan();
  if (!span) return;
  span.setAttributes({ "shop.compensation.action": action, ...(amount === undefined ? {} : { "shop.compensation.amount": amount }) });
  if (action === "nothing_to_undo" || action === "none_rejected_here") span.updateName(NOTHING_TO_UNDO_SPAN);
}

/** Adds `attributes` to the active span (the request being served, say), if tracing is on and there is one. */
export function tagActiveSpan(attributes: Attributes): void {
  if (!on) return;
  trace.getActiveSpan()?.setAttributes(attributes);
}

/** The active span's ids, for a log line; undefined when tracing is off or no span is active. */
export function activeTraceIds(): { trace_id: string; span_id: string } | undefined {
  if (!on) return undefined;
  const span = trace.getActiveSpan();
  if (!span) return undefined;
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}

/** A span's ids, for a log line written after it ended. */
export function traceIdsOf(span: Span): { trace_id: string; span_id: string } {
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}

/** `span` as a carrier (empty without one). */
export const carrierOfSpan = (span: Span | undefined): TraceCarrier => (span ? carrierOf(trace.setSpan(ROOT_CONTEXT, span)) : {});

/** The active context's span as a stored `traceparent` (null when tracing is off or there is none). */
export function activeTraceparent(): string | null {
  if (!on) return null;
  return carrierOf(context.active()).traceparent ?? null;
}

/** The active context (for spans started later under it). */
export const activeContext = (): Context => context.active();

/**
 * A counter of the statements run in the active context's transaction (see db/database.ts):
 * the transaction span's `db.statements` attribute. Undefined outside a traced transaction.
 */
const STATEMENTS = Symbol.for("shop.statements");

/** Counts one statement against the traced transaction running in the active context, if any. */
export function countStatement(): void {
  if (!on) return;
  const counter = context.active().getValue(STATEMENTS) as { n: number } | undefined;
  if (counter) counter.n += 1;
}

/** Runs `fn` in a context that counts its statements into `counter`. */
export function countingStatements<T>(counter: { n: number }, fn: () => T): T {
  return context.with(context.active().setValue(STATEMENTS, counter), fn);
}
