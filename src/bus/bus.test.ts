/** One suite, both transports: the in-memory bus and Kafka (librdkafka's mock broker). */
import { afterAll, describe, expect, test } from "bun:test";
import { Partitioners } from "kafkajs";
import { eventually } from "../../test/support/eventually";
import { type KafkaMock, startKafkaMock } from "../../test/support/kafka-mock";
import { createLogger } from "../log";
import type { Bus, BusRecord } from "./bus";
import { createKafkaBus } from "./kafka";
import { createMemoryBus } from "./memory";
import { partitionFor } from "./partitioner";

const log = createLogger("silent");
const TOPICS = ["bus-a", "bus-b", "bus-c", "bus-d", "bus-e", "bus-f", "bus-g"];
let mock: KafkaMock | null = null;
let n = 0;

/** A Kafka bus on the mock; `mockBrokerQuirks` as the tests' processes have it unless said otherwise. */
async function kafkaBus(mockBrokerQuirks = true): Promise<Bus> {
  mock ??= await startKafkaMock(TOPICS);
  return createKafkaBus(
    { brokers: [mock.brokers], clientId: `bus-test-${++n}`, sessionTimeoutMs: 6000, fetchMaxWaitMs: 200, mockBrokerQuirks },
    log,
  );
}

const transports: [string, () => Promise<Bus>][] = [
  ["memory", async () => createMemoryBus(log)],
  ["kafka", () => kafkaBus()],
];

afterAll(async () => {
  await mock?.stop();
});

/** A handler that appends every record to `into` and acknowledges the whole batch. */
const collect = (into: BusRecord[]) => async (rs: BusRecord[]) => {
  into.push(...rs);
  return rs.length;
};

const record = (topic: string, key: string, value: string): BusRecord => ({ topic, key, value, headers: { "message-id": value } });

describe.each(transports)("bus (%s)", (_name, create) => {
  test("every group sees every record; one key's records keep their order; headers travel", async () => {
    const bus = await create();
    const seen: Record<string, BusRecord[]> = { g1: [], g2: [] };
    const group = `order-${crypto.randomUUID()}`;
    for (const g of ["g1", "g2"] as const) {
      bus.subscribe({ group: `${group}-${g}`, topics: ["bus-a"], handler: collect(seen[g] as BusRecord[]) });
    }
    await bus.start();
    try {
      const keys = ["k1", "k2", "k3"];
      const records = Array.from({ length: 30 }, (_, i) => record("bus-a", keys[i % 3] as string, `${group}:${i}`));
      await bus.publish(records.slice(0, 10));
      await bus.publish(records.slice(10));
      await eventually(() => seen.g1?.length === 30 && seen.g2?.length === 30, 30_000);
      for (const g of Object.values(seen)) {
        for (const key of keys) {
          const values = g.filter((r) => r.key === key).map((r) => r.value);
          expect(values).toEqual(records.filter((r) => r.key === key).map((r) => r.value));
        }
        expect(g.every((r) => r.headers["message-id"] === r.value && r.topic === "bus-a")).toBe(true);
      }
    } finally {
      await bus.stop();
    }
  });

  test("a handler that fails gets the record again; nothing after it on that key jumps ahead", async () => {
    const bus = await create();
    const attempts = new Map<string, number>();
    const done: string[] = [];
    bus.subscribe({
      group: `retry-${crypto.randomUUID()}`,
      topics: ["bus-b"],
      handler: async (rs) => {
        for (const [i, r] of rs.entries()) {
          const a = (attempts.get(r.value) ?? 0) + 1;
          attempts.set(r.value, a);
          if (r.value.endsWith(":0") && a < 3) throw new Error("not yet");
          if (r.value.endsWith(":1") && a < 2) return i; // the rest of the batch comes again
          done.push(r.value);
        }
        return rs.length;
      },
    });
    await bus.start();
    try {
      const id = crypto.randomUUID();
      await bus.publish([record("bus-b", "same", `${id}:0`), record("bus-b", "same", `${id}:1`)]);
      await eventually(() => done.length === 2, 30_000);
      expect(done).toEqual([`${id}:0`, `${id}:1`]);
      expect(attempts.get(`${id}:0`)).toBe(3);
      expect(attempts.get(`${id}:1`)).toBe(2);
    } finally {
      await bus.stop();
    }
  });

  test("stop() waits for the handler in flight", async () => {
    const bus = await create();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let started = false;
    let finished = false;
    bus.subscribe({
      group: `stop-${crypto.randomUUID()}`,
      topics: ["bus-c"],
      handler: async (rs) => {
        started = true;
        await gate;
        finished = true;
        return rs.length;
      },
    });
    await bus.start();
    // In one process a publish resolves once applied, and the handler is held: don't wait for it.
    const published = bus.publish([record("bus-c", "k", crypto.randomUUID())]).catch(() => {});
    await eventually(() => started, 30_000);
    const stopping = bus.stop();
    setTimeout(release, 200);
    await stopping;
    expect(finished).toBe(true);
    await published;
  });

  test("records published before a group starts are delivered to it", async () => {
    const producer = await create();
    await producer.start();
    const id = crypto.randomUUID();
    await producer.publish([record("bus-d", "k", id)]);
    await producer.stop();
    const consumer = await create();
    const got: string[] = [];
    consumer.subscribe({
      group: `late-${crypto.randomUUID()}`,
      topics: ["bus-d"],
      handler: async (rs) => {
        got.push(...rs.map((r) => r.value));
        return rs.length;
      },
    });
    // The memory bus is per process: its "before" is before start() on the same bus.
    const published = _name === "memory" ? consumer.publish([record("bus-d", "k", id)]) : Promise.resolve();
    await consumer.start();
    await published;
    try {
      await eventually(() => got.includes(id), 30_000);
    } finally {
      await consumer.stop();
    }
  });
});

/** Keys that land on the given partitions of a 3-partition topic. */
const keysOn = (...partitions: number[]): string[] =>
  partitions.map((p) => {
    for (;;) {
      const key = crypto.randomUUID();
      if (partitionFor(key, 3) === p) return key;
    }
  });

describe.each(transports)("bus partitions (%s)", (_name, create) => {
  test("partitions are drained concurrently; within one, strictly in order", async () => {
    const bus = await create();
    const [held, other, sameAsHeld] = keysOn(0, 1, 0) as [string, string, string];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const seen: string[] = [];
    bus.subscribe({
      group: `partitions-${crypto.randomUUID()}`,
      topics: ["bus-e"],
      handler: async (rs) => {
        for (const [i, r] of rs.entries()) {
          if (r.key === held && !seen.includes(r.value)) {
            seen.push(r.value);
            await gate;
            return i + 1;
          }
          seen.push(r.value);
        }
        return rs.length;
      },
    });
    await bus.start();
    try {
      const published = bus
        .publish([record("bus-e", held, "held"), record("bus-e", sameAsHeld, "behind"), record("bus-e", other, "other")])
        .catch(() => {});
      // Another partition goes on while partition 0 is held; the record behind the held one waits.
      await eventually(() => seen.includes("other") && seen.includes("held"), 30_000);
      expect(seen).not.toContain("behind");
      release();
      await eventually(() => seen.includes("behind"), 30_000);
      expect(seen.indexOf("behind")).toBeGreaterThan(seen.indexOf("held"));
      await published;
    } finally {
      release();
      await bus.stop();
    }
  });
});

/**
 * A started memory bus of one partition lingering `lingerMs`, with one group whose first batch
 * waits for `release()`; `batches` are the values of each batch it was handed.
 */
async function gatedLane(lingerMs: number) {
  const bus = createMemoryBus(log, 1, lingerMs);
  const batches: string[][] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  bus.subscribe({
    group: "g",
    topics: ["t"],
    handler: async (rs) => {
      batches.push(rs.map((r) => r.value));
      if (batches.length === 1) await gate;
      return rs.length;
    },
  });
  await bus.start();
  return { bus, batches, release };
}

describe("memory bus", () => {
  test("a publish resolves only once every group has applied its records", async () => {
    const bus = createMemoryBus(log);
    const applied: Record<string, number> = { fast: 0, slow: 0 };
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    bus.subscribe({
      group: "fast",
      topics: ["t"],
      handler: async (rs) => {
        applied.fast = (applied.fast ?? 0) + rs.length;
        return rs.length;
      },
    });
    bus.subscribe({
      group: "slow",
      topics: ["t"],
      handler: async (rs) => {
        await gate;
        applied.slow = (applied.slow ?? 0) + rs.length;
        return rs.length;
      },
    });
    await bus.start();
    let resolved = false;
    const published = bus.publish([record("t", "k", "a"), record("t", "k2", "b")]).then(() => (resolved = true));
    await eventually(() => applied.fast === 2);
    expect(resolved).toBe(false); // the slow group is held at its gate

    release();
    await published;
    expect(applied.slow).toBe(2);
    await bus.stop();
  });

  test("an idle lane hands a lone record over at once; a busy one (records piled up meanwhile) lingers so that records published meanwhile share a batch", async () => {
    const { bus, batches, release } = await gatedLane(2000);
    const first = bus.publish([record("t", "k", "a")]);
    // No linger: the handler was called before publish() returned.
    expect(batches).toEqual([["a"]]);
    const rest = [bus.publish([record("t", "k", "b")]), bus.publish([record("t", "k", "c")])];
    release();
    await first;
    // The lane has just handled a batch: it lingers, and a record published now joins b and c.
    rest.push(bus.publish([record("t", "k", "d")]));
    await Promise.all(rest);
    expect(batches).toEqual([["a"], ["b", "c", "d"]]);
    await bus.stop();
  });

  test("one lone batch does not make a lane busy: a record that came alone while it ran is handed over at once (an order's second step)", async () => {
    const { bus, batches, release } = await gatedLane(60_000);
    const first = bus.publish([record("t", "k", "a")]);
    const second = bus.publish([record("t", "k", "b")]);
    release();
    await first;
    // Handed over in the same turn as a's end: a linger would have left it waiting.
    expect(batches).toEqual([["a"], ["b"]]);
    await second;
    await bus.stop();
  });

  test("records still unapplied at stop() fail their publish, so their outbox rows stay unpublished", async () => {
    const bus = createMemoryBus(log);
    bus.subscribe({ group: "never", topics: ["u"], handler: async () => 0 });
    await bus.start();
    const published = bus.publish([record("u", "k", "x")]);
    await bus.stop();
    expect(published).rejects.toThrow("bus stopped");
  });

  test("a key's partition is Kafka's: murmur2 as kafkajs's default partitioner computes it", () => {
    const kafkajs = Partitioners.DefaultPartitioner();
    for (let i = 0; i < 2000; i++) {
      const key = i % 2 ? crypto.randomUUID() : `key-${i}-${"é".repeat(i % 5)}`;
      for (const n of [1, 3, 12]) {
        const partitionMetadata = Array.from({ length: n }, (_, partitionId) => ({
          partitionId,
          leader: 0,
          replicas: [0],
          isr: [0],
          partitionErrorCode: 0,
        }));
        expect(partitionFor(key, n)).toBe(kafkajs({ topic: "t", partitionMetadata, message: { key, value: null } }));
      }
    }
  });
});

describe("kafka bus", () => {
  /** The batches in which a consumer takes a backlog of 20 sends of one record each to `topic`, one partition. */
  async function backlogBatches(topic: string, mockBrokerQuirks: boolean): Promise<string[][]> {
    const producer = await kafkaBus();
    await producer.start();
    const key = crypto.randomUUID();
    const values = Array.from({ length: 20 }, (_, i) => `${key}-${i}`);
    // One producer request each: the mock keeps each as its own message set.
    for (const v of values) await producer.publish([record(topic, key, v)]);
    await producer.stop();
    const consumer = await kafkaBus(mockBrokerQuirks);
    const batches: string[][] = [];
    consumer.subscribe({
      group: `backlog-${crypto.randomUUID()}`,
      topics: [topic],
      handler: async (rs) => {
        batches.push(rs.map((r) => r.value).filter((v) => v.startsWith(key)));
        return rs.length;
      },
    });
    await consumer.start();
    try {
      await eventually(() => batches.flat().length === values.length, 30_000);
    } finally {
      await consumer.stop();
    }
    expect(batches.flat()).toEqual(values);
    return batches;
  }

  test("a backlog of many small sends is delivered in batches of several (the mock answers a fetch with one send per partition)", async () => {
    const batches = await backlogBatches("bus-f", true);
    expect(Math.max(...batches.map((b) => b.length))).toBeGreaterThan(1);
  }, 60_000);

  test("without mockBrokerQuirks (production's setting) kafkajs fetches as released: over the mock, one send per batch", async () => {
    const batches = await backlogBatches("bus-g", false);
    expect(batches.map((b) => b.length)).toEqual(Array(20).fill(1));
  }, 60_000);
});
