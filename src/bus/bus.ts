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

/** Where a consumer group stands in this process, for health and readiness. */
export interface ConsumerState {
  group: string;
  topics: string[];
  /**
   * joining: started, not in the group yet; joined: partitions assigned, fetching;
   * rebalancing: the group is being rebalanced, this member rejoins; restarting: crashed,
   * the client starts it again; failed: crashed for good; stopped.
   */
  state: "idle" | "joining" | "joined" | "rebalancing" | "restarting" | "failed" | "stopped";
  /** Whether this member is in the group with its partitions assigned. */
  joined: boolean;
  /** Partitions assigned to this member, per topic (empty until joined). */
  partitions: Record<string, number[]>;
  /** When it last asked the broker for records (ISO time), null before the first fetch. */
  last_poll_at: string | null;
  /** The last error the consumer reported, if any, and when. */
  last_error: string | null;
  last_error_at: string | null;
}

/** Called when the bus stops consuming for good: the process should stop and exit non-zero. */
export type FatalListener = (err: Error) => void;

/** A transport: the in-memory bus in one process, Kafka between processes. */
export interface Bus {
  readonly kind: "memory" | "kafka";
  /** Publishes that may be in flight at once without breaking the order of a key. */
  readonly publishConcurrency: number;
  /**
   * Connects, so that publish() works, and starts the consumers of the subscriptions made so
   * far. Resolves before the consumer groups have joined: see joined() and consumers().
   */
  start(): Promise<void>;
  /** Resolves once every consumer group has joined for the first time; rejects if the bus fails or stops first. */
  joined(): Promise<void>;
  /** Each subscription's consumer, in subscription order. */
  consumers(): ConsumerState[];
  /** Registers a listener for a failure the bus does not recover from (a consumer that crashed for good). */
  onFatal(listener: FatalListener): void;
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
  /** Stops taking records, waits for handlers in flight, commits, disconnects; also aborts a start() in progress. Safe to call twice. */
  stop(): Promise<void>;
}

/** Most records a consumer applies in one batch (one database transaction). */
export const MAX_BATCH = 100;

/** Delay before the n-th retry (1-based) of a failing handler: 100 ms doubling to 5 s. */
export const retryDelayMs = (attempt: number): number => Math.min(5000, 100 * 2 ** (attempt - 1));

/** A subscription's consumer state before it has joined. */
export const idleState = (sub: Pick<Subscription, "group" | "topics">): ConsumerState => ({
  group: sub.group,
  topics: [...sub.topics],
  state: "idle",
  joined: false,
  partitions: {},
  last_poll_at: null,
  last_error: null,
  last_error_at: null,
});

/** Why some consumer groups are not in their group right now (null when all are), for health. */
export function notJoinedReason(states: ConsumerState[]): string | null {
  const waiting = states.filter((s) => !s.joined);
  if (waiting.length === 0) return null;
  const why = (s: ConsumerState) => (s.state === "joining" || s.state === "idle" ? "not joined yet" : `not joined (${s.state})`);
  return waiting.map((s) => `consumer group ${s.group} ${why(s)}`).join("; ");
}
