/** Writing to the outbox: a message joins the transaction of the change that implies it. */
import type { SQL } from "drizzle-orm";
import { type Message, type MessageType, type PreviousVersions, topicOf, writtenAs } from "../contracts";
import type { Topics } from "../contracts/topics";
import { allInOne, insertMany } from "../db/bulk";
import { afterCommit, type Executor } from "../db/database";
import { currentRequestId, outsideRequest } from "../request-context";
import { activeContext, carrierOf, contextOf, markSpan, messagingSystem, SpanKind, tracingOn } from "../tracing/spans";
import type { MessagingTables } from "./tables";

/** Something that stages messages for publication inside a transaction. */
export type Enqueue = (tx: Executor, message: Message) => Promise<void>;

/** A module's outbox. */
export interface OutboxWriter {
  /** Writes `message` in `tx`; the relay is woken once `tx` commits. */
  enqueue: Enqueue;
  /**
   * An enqueue that only collects, and `flush`, which writes what it collected in one statement,
   * together with `writes` (other inserts or updates on other tables; see allInOne).
   */
  staging(): { enqueue: Enqueue; flush(tx: Executor, writes?: SQL[]): Promise<void> };
  /**
   * For a change written as one statement: the insert of `messages` into the outbox, to join
   * that statement (allInOne), and `written`, to call once it committed (wakes the relay).
   */
  insert(messages: Message[]): { sql: SQL; written(): void };
}

/** How an outbox writes, besides its tables and topics. */
export interface OutboxOptions {
  /** Types written at their previous version (BUS_WRITE_PREVIOUS_VERSIONS); default none. */
  writePrevious?: ReadonlySet<MessageType>;
  /** The previous versions (default: src/contracts' PREVIOUS_VERSIONS). */
  previous?: PreviousVersions;
  /** `messaging.system` of its `create` spans (default: the in-process bus's). */
  system?: string;
}

/** The outbox of `tables` under the configured topic names; `committed` wakes its relay. */
export function outboxWriter(tables: MessagingTables, topics: Topics, committed: () => void, opts: OutboxOptions = {}): OutboxWriter {
  const writePrevious = opts.writePrevious ?? new Set<MessageType>();
  const system = opts.system ?? messagingSystem("memory");
  const row = (message: Message) => ({
    id: message.id,
    topic: topicOf(message.type, topics),
    key: message.order_id,
    type: message.type,
    envelope: message,
  });
  /** `message` with the request id and (tracing on) the trace of the work that writes it. */
  const stamp = (message: Message) =>
    withTrace(withRequest(writtenAs(message, writePrevious, opts.previous)), topicOf(message.type, topics), system);
  // The relay pass a commit wakes serves every request: it must not run under this one's id.
  const wake = () => outsideRequest(committed);
  const insertSql = (messages: Message[]) => insertMany(tables.outbox, ["id", "topic", "key", "type", "envelope"], messages.map(row));
  const write = async (tx: Executor, messages: Message[]) => {
    if (messages.length === 0) return;
    await tx.execute(insertSql(messages));
    afterCommit(tx, wake);
  };
  return {
    enqueue: (tx, message) => write(tx, [stamp(message)]),
    staging() {
      const staged: Message[] = [];
      return {
        enqueue: async (_tx, message) => void staged.push(stamp(message)),
        async flush(tx, writes = []) {
          const messages = staged.splice(0);
          const statements = messages.length > 0 ? [...writes, insertSql(messages)] : writes;
          if (statements.length === 0) return;
          await tx.execute(allInOne(statements));
          if (messages.length > 0) afterCommit(tx, wake);
        },
      };
    },
    insert: (messages) => ({ sql: insertSql(messages.map(stamp)), written: wake }),
  };
}

/** `message` with the request id being served (read when it is enqueued), unless it names one already. */
function withRequest(message: Message): Message {
  return withCause({ request_id: currentRequestId() }, message);
}

/**
 * `message`, caused by `cause`: it carries on the request id and the trace `cause` carries (a
 * batch handler's replies, which run outside any one message's context).
 */
export function withCause(cause: Pick<Message, "request_id" | "traceparent" | "tracestate">, message: Message): Message {
  let out = message;
  if (cause.request_id !== undefined && message.request_id === undefined) out = { ...out, request_id: cause.request_id };
  if (cause.traceparent !== undefined && message.traceparent === undefined) {
    out = { ...out, traceparent: cause.traceparent };
    if (cause.tracestate !== undefined) out.tracestate = cause.tracestate;
  }
  return out;
}

/**
 * Tracing on: `message` stamped with a new `create <topic>` span, child of the trace the message
 * names already (withCause) or else of the active span (the request or message being served).
 * The span's context travels in the envelope, so it is kept in the outbox row: a record relayed
 * after a restart still belongs to its trace. Tracing off: `message` untouched.
 */
function withTrace(message: Message, topic: string, system: string): Message {
  if (!tracingOn()) return message;
  const ctx = markSpan(`create ${topic}`, {
    kind: SpanKind.PRODUCER,
    parent: message.traceparent ? contextOf(message) : activeContext(),
    attributes: {
      "messaging.system": system,
      "messaging.operation.type": "create",
      "messaging.operation.name": "create",
      "messaging.destination.name": topic,
      "messaging.message.id": message.id,
      "shop.order_id": message.order_id,
      "shop.message_type": message.type,
    },
  });
  return ctx ? { ...message, ...carrierOf(ctx) } : message;
}
