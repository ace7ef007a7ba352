/** The consumer's spans (tracing on): `consume <topic>` for a batch, `process <topic>` for each message it applies. */
import type { Message } from "../contracts";
import { type Context, contextOf, inSpan, linkTo, type Span, SpanKind, startSpan, traceIdsOf, tracingOn } from "../tracing/spans";

/** The most messages a batch's span links to (a batch can hold thousands). */
const MAX_LINKS = 128;

/** Whose spans: the consumer group, and its bus's `messaging.system`. */
export interface SpanSource {
  group: string;
  system: string;
}

/** A span's ids for a log line. */
export const spanIds = (span: Span | undefined) => (span ? traceIdsOf(span) : undefined);

/**
 * A `process <topic>` span for one message's handling (tracing on), child of the span that
 * wrote the message (its envelope's traceparent), linked to the batch's span (`batch`).
 */
export function processSpan(source: SpanSource, m: Message, topic: string, batch: Context): Span | undefined {
  if (!tracingOn()) return undefined;
  return startSpan(`process ${topic}`, {
    kind: SpanKind.CONSUMER,
    parent: contextOf(m),
    links: linkTo(batch),
    attributes: {
      "messaging.system": source.system,
      "messaging.operation.type": "process",
      "messaging.operation.name": "process",
      "messaging.destination.name": topic,
      "messaging.consumer.group.name": source.group,
      "messaging.message.id": m.id,
      "shop.order_id": m.order_id,
      "shop.message_type": m.type,
    },
  });
}

/**
 * Runs `fn` (applying a batch of `count` records read from `topic`) in a `consume <topic>` span
 * (tracing on): the child of its message's span when the batch holds one message, else a root
 * linked to every message's.
 */
export function inConsumeSpan<T>(
  source: SpanSource,
  batch: { topic: string; count: number; messages: Message[] },
  fn: () => Promise<T>,
): Promise<T> {
  if (!tracingOn()) return fn();
  const { topic, messages } = batch;
  return inSpan(
    `consume ${topic}`,
    {
      kind: SpanKind.CONSUMER,
      parent: messages.length === 1 ? contextOf(messages[0]) : contextOf(null),
      links: messages.length === 1 ? [] : messages.slice(0, MAX_LINKS).flatMap((m) => linkTo(contextOf(m))),
      attributes: {
        "messaging.system": source.system,
        "messaging.operation.type": "process",
        "messaging.operation.name": "consume",
        "messaging.destination.name": topic,
        "messaging.consumer.group.name": source.group,
        "messaging.batch.message_count": batch.count,
      },
    },
    fn,
  );
}
