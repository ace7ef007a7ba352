/** Kafka transport on kafkajs: keyed records, consumer groups, offsets committed after the handler. */
import {
  type Admin,
  type Consumer,
  type EachMessagePayload,
  Kafka,
  type LogEntry,
  logLevel,
  Partitioners,
  type Producer,
} from "kafkajs";
import type { Logger } from "../log";
import { type Bus, type BusRecord, type Subscription, retryDelayMs } from "./bus";

/** Connection settings. */
export interface KafkaOptions {
  brokers: string[];
  clientId: string;
  /** Partitions of topics this bus creates. */
  partitions?: number;
  /** Consumer group session timeout (Kafka's default is 30 s). */
  sessionTimeoutMs?: number;
  /** How long an idle fetch waits at the broker (kafkajs's default is 5 s). */
  fetchMaxWaitMs?: number;
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
  const consumers: Consumer[] = [];
  let admin: Admin | null = null;
  let producer: Producer | null = null;
  let stopping = false;

  const topics = () => [...new Set(subscriptions.flatMap((s) => s.topics))];

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
        await Bun.sleep(Math.min(5000, 500 * attempt));
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
      await Bun.sleep(Math.min(5000, 500 * attempt));
    }
  };

  /** An idempotent producer where the broker allows it (librdkafka's mock does not), else a plain one. */
  const connectProducer = async (): Promise<Producer> => {
    const settings = { maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner };
    const idempotent = kafka.producer({ ...settings, idempotent: true });
    try {
      await idempotent.connect();
      return idempotent;
    } catch (err) {
      await idempotent.disconnect().catch(() => {});
      log.warn("broker refused an idempotent producer; using a plain one (acks=all, one request in flight)", { err });
    }
    const plain = kafka.producer(settings);
    await plain.connect();
    return plain;
  };

  const startConsumer = async (sub: Subscription) => {
    const consumer = kafka.consumer({
      groupId: sub.group,
      sessionTimeout: opts.sessionTimeoutMs ?? 30_000,
      heartbeatInterval: Math.min(3000, (opts.sessionTimeoutMs ?? 30_000) / 3),
      // A broker answers a fetch as soon as records arrive; the wait only bounds an idle poll.
      maxWaitTimeInMs: opts.fetchMaxWaitMs ?? 5000,
      retry: { initialRetryTime: 300, maxRetryTime: 10_000, retries: 8 },
    });
    consumers.push(consumer);
    await consumer.connect();
    await consumer.subscribe({ topics: sub.topics, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: opts.partitions ?? 3,
      eachMessage: (payload) => deliver(consumer, sub, payload),
    });
  };

  const deliver = async (consumer: Consumer, sub: Subscription, p: EachMessagePayload) => {
    const record = toRecord(p);
    for (let attempt = 1; ; attempt++) {
      try {
        await sub.handler(record);
        break;
      } catch (err) {
        // Not committed: throwing while stopping leaves the record for the next run.
        if (stopping) throw err;
        log.warn("handler failed; will retry", { topic: p.topic, partition: p.partition, offset: p.message.offset, attempt, err });
        await Bun.sleep(retryDelayMs(attempt));
        await p.heartbeat().catch(() => {});
      }
    }
    const next = (BigInt(p.message.offset) + 1n).toString();
    await consumer.commitOffsets([{ topic: p.topic, partition: p.partition, offset: next }]);
  };

  return {
    kind: "kafka",
    subscribe(sub) {
      subscriptions.push(sub);
    },
    async start() {
      admin = await connectAdmin();
      await ensureTopics(admin, topics());
      producer = await connectProducer();
      for (const sub of subscriptions) await startConsumer(sub);
      log.info("Kafka bus started", { brokers: opts.brokers.join(","), groups: subscriptions.map((s) => s.group) });
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
    },
    async stop() {
      stopping = true;
      await Promise.all(consumers.map((c) => c.disconnect().catch((err) => log.warn("consumer disconnect", { err }))));
      await producer?.disconnect().catch((err) => log.warn("producer disconnect", { err }));
      await admin?.disconnect().catch(() => {});
    },
  };
}

function toRecord(p: EachMessagePayload): BusRecord {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(p.message.headers ?? {})) {
    if (v !== undefined) headers[k] = Array.isArray(v) ? v.map(String).join(",") : v.toString();
  }
  return {
    topic: p.topic,
    key: p.message.key?.toString() ?? "",
    value: p.message.value?.toString() ?? "",
    headers,
  };
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
