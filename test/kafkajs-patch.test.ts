/**
 * patches/kafkajs@2.2.4.patch: its workarounds for librdkafka's mock broker are taken only with
 * the consumer option mockBrokerQuirks (KAFKA_MOCK_BROKER_QUIRKS=true, set by test support only);
 * without it those code paths are kafkajs's as released. Each case below fails if its gate is
 * removed or inverted.
 *
 * The group cases drive kafkajs's own ConsumerGroup with a coordinator that answers at once (the
 * mock cannot show the difference without timing it). Whether the leader waited is read from the
 * order of events, not from a clock: a zero-delay timer armed when the JoinGroup is answered
 * fires before the SyncGroup only if something between them waited on a timer, as the leader's
 * 500 ms wait does; the path without it is promises only, so the timer cannot come first there,
 * however loaded the machine. The fetch case runs over the mock itself.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { Kafka, logLevel } from "kafkajs";
import { loadSettings } from "../src/config";
import { eventually } from "./support/eventually";
import { type KafkaMock, startKafkaMock } from "./support/kafka-mock";

// kafkajs's internals, as patched (no type declarations for these paths).
const ConsumerGroup = require("kafkajs/src/consumer/consumerGroup");
const { MemberAssignment } = require("kafkajs/src/consumer/assignerProtocol");
const { createErrorFromCode } = require("kafkajs/src/protocol/error");
const { createLogger, LEVELS } = require("kafkajs/src/loggers");

const TOPIC = "quirks";
/** Kafka's INVALID_REQUEST, what the mock answers a follower's late SyncGroup with. */
const INVALID_REQUEST = 42;

interface GroupRun {
  events: string[];
  joins: number;
  group: { joinAndSync(): Promise<void> };
}

/**
 * A kafkajs ConsumerGroup whose coordinator answers at once: as the leader of two members, or as
 * a follower; `refuseSyncs` SyncGroups are answered INVALID_REQUEST first.
 */
function consumerGroup(mockBrokerQuirks: boolean, role: "leader" | "follower", refuseSyncs = 0): GroupRun {
  const run: GroupRun = { events: [], joins: 0, group: null as never };
  const memberAssignment = MemberAssignment.encode({ version: 0, assignment: { [TOPIC]: [0] } });
  const coordinator = {
    async joinGroup() {
      run.joins++;
      run.events.push("joined");
      setTimeout(() => run.events.push("timer"), 0);
      const leader = role === "leader";
      return {
        generationId: run.joins,
        leaderId: "leader",
        memberId: role,
        groupProtocol: "RoundRobinAssigner",
        members: leader ? [{ memberId: "leader" }, { memberId: "follower" }] : [],
      };
    },
    async syncGroup() {
      run.events.push("sync");
      if (refuseSyncs-- > 0) throw createErrorFromCode(INVALID_REQUEST);
      return { memberAssignment };
    },
  };
  const cluster = {
    findGroupCoordinator: async () => coordinator,
    refreshMetadata: async () => {},
    findTopicPartitionMetadata: () => [{ partitionId: 0 }],
    committedOffsets: () => ({}),
  };
  const assigner = {
    name: "RoundRobinAssigner",
    protocol: () => ({ name: "RoundRobinAssigner", metadata: Buffer.alloc(0) }),
    assign: async () => [],
  };
  run.group = new ConsumerGroup({
    retry: { retries: 3, initialRetryTime: 10, maxRetryTime: 50 },
    cluster,
    groupId: "g",
    topics: [TOPIC],
    topicConfigurations: { [TOPIC]: {} },
    logger: createLogger({ level: LEVELS.NOTHING, logCreator: () => () => {} }),
    instrumentationEmitter: { emit() {} },
    assigners: [assigner],
    sessionTimeout: 6000,
    rebalanceTimeout: 12_000,
    maxBytesPerPartition: 1_048_576,
    minBytes: 1,
    maxBytes: 10_485_760,
    maxWaitTimeInMs: 100,
    autoCommit: false,
    isolationLevel: 1,
    rackId: "",
    metadataMaxAge: 300_000,
    mockBrokerQuirks,
  });
  return run;
}

describe("the leader of a group of several, before its SyncGroup", () => {
  test("without mockBrokerQuirks it syncs at once, as kafkajs does", async () => {
    const run = consumerGroup(false, "leader");
    await run.group.joinAndSync();
    expect(run.events).toEqual(["joined", "sync"]);
  });

  test("with mockBrokerQuirks it waits on a timer first (the 500 ms), so the followers' syncs reach the mock first", async () => {
    const run = consumerGroup(true, "leader");
    await run.group.joinAndSync();
    expect(run.events).toEqual(["joined", "timer", "sync"]);
  });
});

describe("a follower whose SyncGroup is refused with INVALID_REQUEST", () => {
  test("without mockBrokerQuirks it fails, as kafkajs does (the error is not retriable)", async () => {
    const run = consumerGroup(false, "follower", 1);
    const error = await run.group.joinAndSync().then(
      () => null,
      (err: Error & { type?: string }) => err,
    );
    expect(error?.type).toBe("INVALID_REQUEST");
    expect(run.joins).toBe(1);
  });

  test("with mockBrokerQuirks it joins again and gets its assignment", async () => {
    const run = consumerGroup(true, "follower", 1);
    await run.group.joinAndSync();
    expect(run.joins).toBe(2);
    expect(run.events.filter((e) => e === "sync")).toHaveLength(2);
  });
});

describe("over librdkafka's mock broker: a fetch of a partition where several message sets wait", () => {
  let mock: KafkaMock | null = null;
  afterAll(async () => {
    await mock?.stop();
  });

  /** The sizes of the batches a fresh consumer takes of `sets` one-record sets, until it has them all. */
  async function batchSizes(brokers: string, mockBrokerQuirks: boolean, sets: number): Promise<number[]> {
    const kafka = new Kafka({ clientId: "kafkajs-patch-test", brokers: [brokers], logLevel: logLevel.NOTHING });
    const consumer = kafka.consumer({ groupId: `kafkajs-patch-${crypto.randomUUID()}`, maxWaitTimeInMs: 100, mockBrokerQuirks });
    const sizes: number[] = [];
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: [TOPIC], fromBeginning: true });
      await consumer.run({ eachBatch: async ({ batch }) => void sizes.push(batch.messages.length) });
      await eventually(() => expect(sizes.reduce((a, b) => a + b, 0)).toBe(sets), 60_000, 50);
    } finally {
      await consumer.disconnect();
    }
    return sizes;
  }

  test("without mockBrokerQuirks the mock gives one set per fetch, as kafkajs asks once; with them kafkajs tops the fetch up", async () => {
    mock = await startKafkaMock([`${TOPIC}:1`]);
    const kafka = new Kafka({ clientId: "kafkajs-patch-test", brokers: [mock.brokers], logLevel: logLevel.NOTHING });
    const producer = kafka.producer();
    await producer.connect();
    const SETS = 5;
    // One send is one produce request: one message set of one record.
    for (let i = 0; i < SETS; i++) await producer.send({ topic: TOPIC, messages: [{ key: "k", value: `v${i}` }] });
    await producer.disconnect();

    expect(await batchSizes(mock.brokers, false, SETS)).toEqual(Array(SETS).fill(1));
    // The first fetch takes at least one more round at once (fetchMore's first round always runs).
    const topped = await batchSizes(mock.brokers, true, SETS);
    expect(topped[0]).toBeGreaterThan(1);
  }, 120_000);
});

describe("KAFKA_MOCK_BROKER_QUIRKS", () => {
  test("is off unless set, and refused without BUS=kafka", () => {
    const kafka = { BUS: "kafka", BUS_SIGNING_KEY: "k".repeat(32) };
    expect(loadSettings(kafka).KAFKA_MOCK_BROKER_QUIRKS).toBe(false);
    expect(loadSettings({ ...kafka, KAFKA_MOCK_BROKER_QUIRKS: "true" }).KAFKA_MOCK_BROKER_QUIRKS).toBe(true);
    expect(() => loadSettings({ KAFKA_MOCK_BROKER_QUIRKS: "true" })).toThrow('KAFKA_MOCK_BROKER_QUIRKS="true": only with BUS=kafka');
    expect(() => loadSettings({ ...kafka, KAFKA_MOCK_BROKER_QUIRKS: "yes" })).toThrow('expected "true" or "false"');
  });
});
