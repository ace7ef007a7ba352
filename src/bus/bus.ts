/** The message bus seen by modules: Kafka semantics whatever the transport. */

/** One record on a topic. `key` orders records: same key, same order of delivery. */
export interface BusRecord {
  topic: string;
  key: string;
  value: string;
  headers: Record<string, string>;
}

/**
 * Handles one record. Resolving acknowledges it (its offset may be committed); throwing
 * means "not processed": the bus delivers it again later (at-least-once).
 */
export type RecordHandler = (record: BusRecord) => Promise<void>;

/** A consumer group's interest in topics. Each group sees every record once or more. */
export interface Subscription {
  group: string;
  topics: string[];
  handler: RecordHandler;
}

/** A transport: the in-memory bus in one process, Kafka between processes. */
export interface Bus {
  readonly kind: "memory" | "kafka";
  /** Connects and starts delivering to subscriptions made so far. */
  start(): Promise<void>;
  /** Registers a consumer group; call before start(). */
  subscribe(subscription: Subscription): void;
  /** Publishes records; resolves once the transport has accepted all of them. */
  publish(records: BusRecord[]): Promise<void>;
  /** Throws when the transport cannot currently publish or consume. */
  check(): Promise<void>;
  /** Stops taking records, waits for handlers in flight, commits, disconnects. */
  stop(): Promise<void>;
}

/** Delay before the n-th retry (1-based) of a failing handler: 100 ms doubling to 5 s. */
export const retryDelayMs = (attempt: number): number => Math.min(5000, 100 * 2 ** (attempt - 1));
