/** What a module's consumer reacts to: a handler per message type, for one message or for a run of them. */
import type { SQL } from "drizzle-orm";
import type { Message, MessageOf, MessageType } from "../contracts";
import type { Executor } from "../db/database";
import type { Enqueue } from "./outbox";

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

/** The handler for one message of `m`'s type, if the module consumes it. */
export const handlerFor = (consumers: Consumers, m: Message) =>
  consumers.handlers[m.type] as ((tx: Executor, m: Message, e: Enqueue) => Promise<void>) | undefined;

/** The batch handler of `m`'s type, if it has one. */
export const batchHandlerFor = (consumers: Consumers, m: Message) =>
  consumers.batchHandlers?.[m.type] as ((tx: Executor, ms: Message[], e: Enqueue) => Promise<SQL[]>) | undefined;
