/** Kafka transport on kafkajs: keyed records, consumer groups, offsets committed after the handler. */
import type { Admin, Kafka, Producer } from "kafkajs";
import { InvariantError } from "../../errors";
import type { Logger } from "../../log";
import { countKafkaRequest } from "../../work-counters";
import { type Bus, notJoinedReason } from "../bus";
import { checkMockBroker, connectAdmin, waitForBroker } from "./broker";
import { createKafkaClient, createProbeClient } from "./client";
import { type ConsumerGroups, startMember, stopMember } from "./consumer-group";
import { createLifecycle } from "./lifecycle";
import { copyState } from "./member";
import { consumerTimings, type KafkaOptions } from "./options";
import { connectProducer, publishRecords } from "./producer";
import { ensureTopics, subscribedTopics } from "./topics";

export type { KafkaOptions } from "./options";

/** The connections a started bus holds: the admin client for topics and health, the producer for publish. */
interface Connections {
  admin: Admin | null;
  producer: Producer | null;
}

/** Creates a bus on Kafka; start() waits for the broker and makes sure the topics exist. */
export function createKafkaBus(opts: KafkaOptions, log: Logger): Bus {
  const kafka = createKafkaClient(opts, log);
  const lifecycle = createLifecycle();
  const probe = createProbeClient(opts);
  const groups: ConsumerGroups = {
    kafka,
    log,
    lifecycle,
    subscriptions: [],
    members: [],
    partitions: opts.partitions,
    timings: consumerTimings(opts, log),
    mockBrokerQuirks: opts.mockBrokerQuirks ?? false,
  };
  const conn: Connections = { admin: null, producer: null };
  let starting: Promise<void> | null = null;
  let stopped: Promise<void> | null = null;
  return {
    kind: "kafka",
    // One send at a time: kafkajs serialises an idempotent producer's requests per broker anyway,
    // and a retried send must not let a later one overtake it. Each send carries a whole batch.
    publishConcurrency: 1,
    subscribe(sub) {
      if (starting) throw new InvariantError("subscribe before start()");
      groups.subscriptions.push(sub);
    },
    start() {
      if (lifecycle.stopping) return Promise.reject(new Error("Kafka bus is stopped"));
      starting ??= startBus(opts, probe, groups, conn);
      return starting;
    },
    joined: () => lifecycle.allJoined,
    consumers: () => groups.members.map(({ state }) => copyState(state)),
    onFatal: (listener) => lifecycle.onFatal(listener),
    async publish(records) {
      if (!conn.producer || lifecycle.stopping) throw new Error("Kafka producer is not running");
      await publishRecords(conn.producer, records);
    },
    async check() {
      if (!conn.admin || lifecycle.stopping) throw new Error("Kafka bus is not running");
      await conn.admin.describeCluster();
      const reason = notJoinedReason(groups.members.map((m) => m.state));
      if (reason) throw new Error(reason);
    },
    stop() {
      stopped ??= stopBus(groups, conn, starting);
      return stopped;
    },
  };
}

/** Waits for the broker, makes sure the topics exist, connects the producer, then starts one member per subscription. */
async function startBus(opts: KafkaOptions, probe: Kafka, groups: ConsumerGroups, conn: Connections): Promise<void> {
  const { kafka, lifecycle, log, subscriptions } = groups;
  await waitForBroker(probe, opts.brokers, lifecycle, log);
  conn.admin = await connectAdmin(kafka);
  if (groups.mockBrokerQuirks) await checkMockBroker(conn.admin, opts.brokers, log);
  lifecycle.stillStarting();
  await ensureTopics(conn.admin, subscribedTopics(subscriptions), opts.partitions ?? 3, lifecycle, log);
  lifecycle.stillStarting();
  conn.producer = await connectProducer(kafka, log);
  conn.producer.on(conn.producer.events.REQUEST, countKafkaRequest);
  lifecycle.stillStarting();
  for (const sub of subscriptions) await startMember(sub, groups);
  if (subscriptions.length === 0) lifecycle.markJoined();
  log.info("Kafka bus started", { brokers: opts.brokers.join(","), groups: subscriptions.map((s) => s.group) });
}

/** Cuts a start in progress short, stops every member, then disconnects the producer and the admin client. */
async function stopBus(groups: ConsumerGroups, conn: Connections, starting: Promise<void> | null): Promise<void> {
  const { lifecycle, log, members } = groups;
  lifecycle.beginStop();
  await starting?.catch(() => {});
  await Promise.all(members.map((member) => stopMember(member, log)));
  await conn.producer?.disconnect().catch((err) => log.warn("producer disconnect", { err }));
  await conn.admin?.disconnect().catch(() => {});
}
