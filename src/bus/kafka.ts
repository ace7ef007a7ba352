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
import type { Logger } from "../log";
import { type Bus, type BusRecord, MAX_BATCH, retryDelayMs, type Subscription } from "./bus";

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
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: opts.partitions ?? 3,
      eachBatch: (payload) => deliver(consumer, sub, payload),
    });
  };

  /** Hands a fetched batch to the handler in chunks; commits each chunk's offset after it is applied. */
  const deliver = async (consumer: Consumer, sub: Subscription, p: EachBatchPayload) => {
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
      }
      if (done > 0) {
        const last = chunk[done - 1] as KafkaMessage;
        p.resolveOffset(last.offset);
        await consumer.commitOffsets([{ topic, partition, offset: (BigInt(last.offset) + 1n).toString() }]);
        i += done;
      }
      if (done < chunk.length) {
        attempt += 1;
        if (stopping) return;
        await Bun.sleep(retryDelayMs(attempt));
      } else {
        attempt = 0;
      }
      await p.heartbeat().catch(() => {});
    }
  };

  return {
    kind: "kafka",
    // One send at a time: kafkajs serialises an idempotent producer's requests per broker anyway,
    // and a retried send must not let a later one overtake it. Each send carries a whole batch.
    publishConcurrency: 1,
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
