/** The message bus seen by modules: Kafka semantics whatever the transport. */

/** One record on a topic. `key` picks the partition: same key, same order of delivery. */
export interface BusRecord {
  topic: string;
  key: string;
  value: string;
  headers: Record<string, string>;
}

/**
 * Applies records taken in order from one partition and returns how many of them, from the
 * first, are done (durably applied or set aside): those are acknowledged (offset committed).
 * The rest, and everything after them on that partition, are delivered again after a backoff;
 * throwing counts as 0 done (at-least-once).
 */
export type BatchHandler = (records: BusRecord[]) => Promise<number>;

/** A consumer group's interest in topics. Each group sees every record once or more. */
export interface Subscription {
  group: string;
  topics: string[];
  handler: BatchHandler;
}

/** A transport: the in-memory bus in one process, Kafka between processes. */
export interface Bus {
  readonly kind: "memory" | "kafka";
  /** Publishes that may be in flight at once without breaking the order of a key. */
  readonly publishConcurrency: number;
  /** Connects and starts delivering to subscriptions made so far. */
  start(): Promise<void>;
  /** Registers a consumer group; call before start(). */
  subscribe(subscription: Subscription): void;
  /**
   * Publishes records, in order, and resolves once they are durable downstream: acknowledged by
   * every in-sync replica on Kafka; applied by every consumer group in one process. Only then
   * may the caller forget them (mark its outbox rows published).
   */
  publish(records: BusRecord[]): Promise<void>;
  /** Throws when the transport cannot currently publish or consume. */
  check(): Promise<void>;
  /** Stops taking records, waits for handlers in flight, commits, disconnects. */
  stop(): Promise<void>;
}

/** Most records a consumer applies in one batch (one database transaction). */
export const MAX_BATCH = 100;

/** Delay before the n-th retry (1-based) of a failing handler: 100 ms doubling to 5 s. */
export const retryDelayMs = (attempt: number): number => Math.min(5000, 100 * 2 ** (attempt - 1));
