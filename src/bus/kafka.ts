/** Kafka transport on kafkajs: keyed records, consumer groups, offsets committed after the handler. */
import {
  type Admin,
  type Consumer,
  type EachBatchPayload,
  Kafka,
  type KafkaMessage,
  type LogEntry,
  logLevel,
  Partitioners,
  type Producer,
} from "kafkajs";
import { causeChain } from "../errors";
import type { Logger } from "../log";
import {
  type Bus,
  type BusRecord,
  type ConsumerState,
  type FatalListener,
  MAX_BATCH,
  notJoinedReason,
  retryDelayMs,
  type Subscription,
} from "./bus";

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
}

/** Defaults of the consumer group timings (see README, "Kafka consumer timings"). */
export const KAFKA_CONSUMER_DEFAULTS = { sessionTimeoutMs: 10_000, heartbeatIntervalMs: 1000 };

/** One subscription's consumer and what it reported. */
interface Member {
  sub: Subscription;
  consumer: Consumer;
  state: ConsumerState;
  /** consumer.run(): settles once the first join succeeded or crashed. */
  running: Promise<void> | null;
}

/** Creates a bus on Kafka; start() waits for the broker and makes sure the topics exist. */
export function createKafkaBus(opts: KafkaOptions, log: Logger): Bus {
  const kafka = new Kafka({
    clientId: opts.clientId,
    brokers: opts.brokers,
    connectionTimeout: 3000,
    requestTimeout: 10_000,
    retry: { initialRetryTime: 300, maxRetryTime: 10_000, retries: 8 },
    logLevel: logLevel.WARN,
    logCreator: () => (entry: LogEntry) => forwardLog(log, entry),
  });
  const subscriptions: Subscription[] = [];
  const members: Member[] = [];
  let admin: Admin | null = null;
  let producer: Producer | null = null;
  let stopping = false;
  let starting: Promise<void> | null = null;
  let stopped: Promise<void> | null = null;
  /** Aborted by stop(): cuts the waits of a start in progress short. */
  const halt = new AbortController();
  const fatalListeners: FatalListener[] = [];
  let failure: Error | null = null;
  let markJoined!: () => void;
  let failJoin!: (err: Error) => void;
  const allJoined = new Promise<void>((resolve, reject) => {
    markJoined = resolve;
    failJoin = reject;
  });
  allJoined.catch(() => {});

  const topics = () => [...new Set(subscriptions.flatMap((s) => s.topics))];

  /** Sleeps `ms`, or less if the bus stops meanwhile. */
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      if (halt.signal.aborted) return resolve();
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        halt.signal.removeEventListener("abort", done);
        resolve();
      }
      halt.signal.addEventListener("abort", done, { once: true });
    });

  const stillStarting = () => {
    if (stopping) throw new Error("Kafka bus stopped during start");
  };

  /** A failure the bus does not recover from: the process should stop and exit non-zero. */
  const fail = (err: Error) => {
    if (stopping || failure) return;
    failure = err;
    failJoin(err);
    for (const listener of fatalListeners) listener(err);
  };

  // A quiet client for the first contact: one clear line per attempt instead of kafkajs's retries.
  const probe = new Kafka({
    clientId: opts.clientId,
    brokers: opts.brokers,
    connectionTimeout: 3000,
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
  });

  const waitForBroker = async (): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      const a = probe.admin();
      try {
        await a.connect();
        await a.describeCluster();
        await a.disconnect();
        return;
      } catch (err) {
        await a.disconnect().catch(() => {});
        if (stopping) throw new Error("stopped while waiting for Kafka");
        log.warn("waiting for Kafka", { brokers: opts.brokers.join(","), attempt, err });
        await pause(Math.min(5000, 500 * attempt));
        if (stopping) throw new Error("stopped while waiting for Kafka");
      }
    }
  };

  const connectAdmin = async (): Promise<Admin> => {
    await waitForBroker();
    const a = kafka.admin();
    await a.connect();
    return a;
  };

  const ensureTopics = async (a: Admin, names: string[]) => {
    if (names.length === 0) return;
    try {
      await a.createTopics({
        topics: names.map((topic) => ({ topic, numPartitions: opts.partitions ?? 3 })),
        waitForLeaders: true,
      });
    } catch (err) {
      log.warn("could not create topics; going on if they exist", { topics: names, err });
    }
    for (let attempt = 1; ; attempt++) {
      const existing = new Set(await a.listTopics());
      const missing = names.filter((n) => !existing.has(n));
      if (missing.length === 0) return;
      if (stopping) throw new Error("stopped while waiting for topics");
      log.warn("waiting for topics to exist", { missing, attempt });
      await pause(Math.min(5000, 500 * attempt));
    }
  };

  /** An idempotent producer where the broker allows it (librdkafka's mock does not), else a plain one. */
  const connectProducer = async (): Promise<Producer> => {
    const settings = { createPartitioner: Partitioners.DefaultPartitioner };
    const idempotent = kafka.producer({ ...settings, idempotent: true });
    try {
      await idempotent.connect();
      return idempotent;
    } catch (err) {
      await idempotent.disconnect().catch(() => {});
      log.warn("broker refused an idempotent producer; using a plain one (acks=all, one request in flight)", { err });
    }
    const plain = kafka.producer({ ...settings, maxInFlightRequests: 1 });
    await plain.connect();
    return plain;
  };

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

  const now = () => new Date().toISOString();
  const setError = (state: ConsumerState, err: unknown) => {
    state.last_error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    state.last_error_at = now();
  };

  /** Follows the consumer's events into its state; a crash kafkajs gives up on is fatal. */
  const watch = (m: Member) => {
    const { consumer, state } = m;
    const { GROUP_JOIN, FETCH_START, REBALANCING, CRASH, STOP } = consumer.events;
    consumer.on(GROUP_JOIN, ({ payload }) => {
      Object.assign(state, { state: "joined", joined: true, partitions: { ...payload.memberAssignment } });
      // One line per rebalance this member went through: which partitions it holds from now on.
      log.info("consumer group joined", {
        group: state.group,
        member: payload.memberId,
        leader: payload.isLeader,
        partitions: state.partitions,
        duration_ms: payload.duration,
      });
      if (members.length === subscriptions.length && members.every((x) => x.state.joined)) markJoined();
    });
    consumer.on(FETCH_START, () => {
      state.last_poll_at = now();
    });
    consumer.on(REBALANCING, ({ payload }) => {
      if (!stopping) log.info("consumer group rebalancing", { group: state.group, member: payload.memberId });
      Object.assign(state, { state: "rebalancing", joined: false });
    });
    consumer.on(STOP, () => {
      Object.assign(state, { state: stopping ? "stopped" : state.state, joined: false, partitions: {} });
    });
    consumer.on(CRASH, ({ payload }) => {
      if (stopping) return;
      const { error, restart } = payload;
      setError(state, error);
      Object.assign(state, { state: restart ? "restarting" : "failed", joined: false, partitions: {} });
      if (restart) {
        log.warn("consumer crashed; kafkajs restarts it", { group: state.group, restart, err: error });
      } else {
        log.error("consumer crashed; kafkajs does not restart it", { group: state.group, restart, err: error });
        fail(new Error(`consumer group ${state.group} crashed: ${error.message}`));
      }
    });
  };

  const startConsumer = async (sub: Subscription) => {
    const consumer = kafka.consumer({
      groupId: sub.group,
      sessionTimeout,
      heartbeatInterval,
      rebalanceTimeout,
      // A broker answers a fetch as soon as records arrive; the wait only bounds an idle poll.
      maxWaitTimeInMs: fetchMaxWait,
      retry: { initialRetryTime: 300, maxRetryTime: 10_000, retries: 8 },
    });
    const state: ConsumerState = {
      group: sub.group,
      topics: [...sub.topics],
      state: "joining",
      joined: false,
      partitions: {},
      last_poll_at: null,
      last_error: null,
      last_error_at: null,
    };
    const member: Member = { sub, consumer, state, running: null };
    members.push(member);
    watch(member);
    await consumer.connect();
    stillStarting();
    await consumer.subscribe({ topics: sub.topics, fromBeginning: true });
    stillStarting();
    // Not awaited: joining waits for the group (up to a session timeout after a kill -9);
    // readiness follows GROUP_JOIN instead. A crash while joining arrives as a CRASH event.
    member.running = consumer
      .run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: opts.partitions ?? 3,
        eachBatch: (payload) => deliver(consumer, member, payload),
      })
      .catch((err: Error) => {
        if (stopping) return;
        setError(state, err);
        Object.assign(state, { state: "failed", joined: false });
        log.error("consumer failed to start", { group: sub.group, err });
        fail(new Error(`consumer group ${sub.group} failed to start: ${err.message}`));
      });
  };

  /** Hands a fetched batch to the handler in chunks; commits each chunk's offset after it is applied. */
  const deliver = async (consumer: Consumer, member: Member, p: EachBatchPayload) => {
    const { sub, state } = member;
    const { topic, partition, messages } = p.batch;
    let i = 0;
    let attempt = 0;
    while (i < messages.length) {
      // Not committed: what is left is fetched again by whoever owns the partition next.
      if (stopping || !p.isRunning() || p.isStale()) return;
      const chunk = messages.slice(i, i + MAX_BATCH);
      let done = 0;
      try {
        done = Math.max(0, Math.min(chunk.length, await sub.handler(chunk.map((m) => toRecord(topic, m)))));
      } catch (err) {
        log.warn("handler failed; will retry", { topic, partition, offset: chunk[0]?.offset, err });
        setError(state, err);
      }
      if (done > 0) {
        const last = chunk[done - 1] as KafkaMessage;
        p.resolveOffset(last.offset);
        // Through the batch's own commit (the consumer-level one wraps a lost membership in a
        // non-retriable error that kafkajs gives up on); see rejoinOnLostMembership.
        await p
          .commitOffsetsIfNecessary({ topics: [{ topic, partitions: [{ partition, offset: (BigInt(last.offset) + 1n).toString() }] }] })
          .catch((err: unknown) => {
            rejoinOnLostMembership(err);
            throw err;
          });
        i += done;
      }
      if (done < chunk.length) {
        attempt += 1;
        if (stopping) return;
        await pause(retryDelayMs(attempt));
      } else {
        attempt = 0;
      }
      await p.heartbeat().catch(rejoinOnLostMembership);
    }
  };

  return {
    kind: "kafka",
    // One send at a time: kafkajs serialises an idempotent producer's requests per broker anyway,
    // and a retried send must not let a later one overtake it. Each send carries a whole batch.
    publishConcurrency: 1,
    subscribe(sub) {
      if (starting) throw new Error("subscribe before start()");
      subscriptions.push(sub);
    },
    start() {
      if (stopping) return Promise.reject(new Error("Kafka bus is stopped"));
      starting ??= (async () => {
        admin = await connectAdmin();
        stillStarting();
        await ensureTopics(admin, topics());
        stillStarting();
        producer = await connectProducer();
        stillStarting();
        for (const sub of subscriptions) await startConsumer(sub);
        if (subscriptions.length === 0) markJoined();
        log.info("Kafka bus started", { brokers: opts.brokers.join(","), groups: subscriptions.map((s) => s.group) });
      })();
      return starting;
    },
    joined: () => allJoined,
    consumers: () => members.map(({ state }) => ({ ...state, topics: [...state.topics], partitions: { ...state.partitions } })),
    onFatal(listener) {
      fatalListeners.push(listener);
      if (failure) listener(failure);
    },
    async publish(records: BusRecord[]) {
      if (!producer || stopping) throw new Error("Kafka producer is not running");
      const byTopic = new Map<string, BusRecord[]>();
      for (const r of records) byTopic.set(r.topic, [...(byTopic.get(r.topic) ?? []), r]);
      await producer.sendBatch({
        acks: -1,
        topicMessages: [...byTopic].map(([topic, rs]) => ({
          topic,
          messages: rs.map((r) => ({ key: r.key, value: r.value, headers: r.headers })),
        })),
      });
    },
    async check() {
      if (!admin || stopping) throw new Error("Kafka bus is not running");
      await admin.describeCluster();
      const reason = notJoinedReason(members.map((m) => m.state));
      if (reason) throw new Error(reason);
    },
    stop() {
      stopped ??= (async () => {
        stopping = true;
        halt.abort();
        failJoin(new Error("Kafka bus stopped"));
        await starting?.catch(() => {});
        await Promise.all(
          members.map(async ({ consumer, state, running }) => {
            await consumer.disconnect().catch((err) => log.warn("consumer disconnect", { err }));
            // A join cut short by the disconnect crashes, and kafkajs schedules a restart once
            // run() settles: wait for that (bounded) and stop again, which cancels it.
            let timer: Timer | undefined;
            await Promise.race([running, new Promise((resolve) => (timer = setTimeout(resolve, 5000)))]);
            clearTimeout(timer);
            await consumer.stop().catch(() => {});
            Object.assign(state, { state: "stopped", joined: false, partitions: {} });
          }),
        );
        await producer?.disconnect().catch((err) => log.warn("producer disconnect", { err }));
        await admin?.disconnect().catch(() => {});
      })();
      return stopped;
    },
  };
}

function toRecord(topic: string, m: KafkaMessage): BusRecord {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.headers ?? {})) {
    if (v !== undefined) headers[k] = Array.isArray(v) ? v.map(String).join(",") : v.toString();
  }
  return { topic, key: m.key?.toString() ?? "", value: m.value?.toString() ?? "", headers };
}

function forwardLog(log: Logger, entry: LogEntry): void {
  const { message, ...fields } = entry.log;
  // Bounded retries are deliberate: a broker that refuses idempotence must fail fast so we can fall back.
  if (message.startsWith("Limiting retries for the idempotent producer")) return;
  const line = `kafkajs: ${message}`;
  if (entry.level === logLevel.ERROR) log.warn(line, { namespace: entry.namespace, ...fields });
  else if (entry.level === logLevel.WARN) log.warn(line, { namespace: entry.namespace, ...fields });
  else log.debug(line, { namespace: entry.namespace, ...fields });
}

/** Kafka error types that mean this member no longer holds its partitions: rejoin the group. */
const MEMBERSHIP_LOST = new Set(["UNKNOWN_MEMBER_ID", "ILLEGAL_GENERATION", "REBALANCE_IN_PROGRESS", "NOT_COORDINATOR_FOR_GROUP"]);

/**
 * After the broker dropped this member (a broker outage, or a handler retrying past the session
 * timeout), a commit or heartbeat fails with one of MEMBERSHIP_LOST. Rethrown as kafkajs's own
 * protocol error (not wrapped), it makes kafkajs's runner rejoin the group instead of crashing;
 * what was applied but not committed is delivered again and dropped by the inbox. Returns for
 * any other error (the caller decides).
 */
function rejoinOnLostMembership(err: unknown): void {
  const root = causeChain(err).findLast((c) => c instanceof Error);
  const type = (root as { type?: unknown } | undefined)?.type;
  if (typeof type === "string" && MEMBERSHIP_LOST.has(type)) throw root;
}
