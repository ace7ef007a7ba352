/** Kafka connection settings, and the consumer group timings a bus derives from them. */
import type { Logger } from "../../log";

/** Connection settings. */
export interface KafkaOptions {
  brokers: string[];
  clientId: string;
  /** Partitions of topics this bus creates. */
  partitions?: number;
  /**
   * Consumer group session timeout: a member silent this long (killed) is dropped from its
   * group. A member restarted after `kill -9` joins only once its old self is dropped.
   */
  sessionTimeoutMs?: number;
  /** How often a member heartbeats (under a third of the session timeout). */
  heartbeatIntervalMs?: number;
  /**
   * How long the coordinator waits for live members to rejoin during a rebalance; kafkajs gives
   * a JoinGroup this long plus 5 s to be answered. Default: twice the session timeout.
   */
  rebalanceTimeoutMs?: number;
  /** How long an idle fetch waits at the broker (kafkajs's default is 5 s). */
  fetchMaxWaitMs?: number;
  /**
   * Tests against librdkafka's mock broker only: the patched kafkajs's workarounds for it
   * (patches/kafkajs@2.2.4.patch, option mockBrokerQuirks). The bus refuses to start with it
   * against a broker that is not the mock. Default false: kafkajs as released there.
   */
  mockBrokerQuirks?: boolean;
}

/** Defaults of the consumer group timings (see docs/bus.md, "Kafka consumer timings"). */
const KAFKA_CONSUMER_DEFAULTS = { sessionTimeoutMs: 10_000, heartbeatIntervalMs: 1000 };

/** The timings, in ms, every consumer of one bus is created with. */
export interface ConsumerTimings {
  sessionTimeout: number;
  heartbeatInterval: number;
  rebalanceTimeout: number;
  fetchMaxWait: number;
}

/** Fills in the defaults of the consumer timings; warns when an idle member may miss its session. */
export function consumerTimings(opts: KafkaOptions, log: Logger): ConsumerTimings {
  const sessionTimeout = opts.sessionTimeoutMs ?? KAFKA_CONSUMER_DEFAULTS.sessionTimeoutMs;
  const heartbeatInterval = Math.min(
    opts.heartbeatIntervalMs ?? KAFKA_CONSUMER_DEFAULTS.heartbeatIntervalMs,
    Math.floor(sessionTimeout / 3),
  );
  // Not below the session timeout: librdkafka's mock holds a JoinGroup for up to a session
  // timeout, and kafkajs would give up on it and join again, forever.
  const rebalanceTimeout = opts.rebalanceTimeoutMs ?? 2 * sessionTimeout;
  // kafkajs heartbeats between fetches: an idle fetch held for the full wait delays the next one.
  const fetchMaxWait = opts.fetchMaxWaitMs ?? 5000;
  if (sessionTimeout < 2 * fetchMaxWait) {
    log.warn("the session timeout is under twice the fetch wait: an idle member may miss its session", {
      session_timeout_ms: sessionTimeout,
      fetch_max_wait_ms: fetchMaxWait,
    });
  }
  return { sessionTimeout, heartbeatInterval, rebalanceTimeout, fetchMaxWait };
}
