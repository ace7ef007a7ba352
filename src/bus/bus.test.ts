/** One suite, both transports: the in-memory bus and Kafka (librdkafka's mock broker). */
import { afterAll, describe, expect, test } from "bun:test";
import { type KafkaMock, startKafkaMock } from "../../test/support/kafka-mock";
import { eventually } from "../../test/support/eventually";
import { createLogger } from "../log";
import type { Bus, BusRecord } from "./bus";
import { createKafkaBus } from "./kafka";
import { createMemoryBus } from "./memory";

const log = createLogger("silent");
const TOPICS = ["bus-a", "bus-b", "bus-c", "bus-d"];
let mock: KafkaMock | null = null;
let n = 0;

const transports: [string, () => Promise<Bus>][] = [
  ["memory", async () => createMemoryBus(log)],
  [
    "kafka",
    async () => {
      mock ??= await startKafkaMock(TOPICS);
      return createKafkaBus({ brokers: [mock.brokers], clientId: `bus-test-${++n}`, sessionTimeoutMs: 6000, fetchMaxWaitMs: 200 }, log);
    },
  ],
];

afterAll(async () => {
  await mock?.stop();
});

const record = (topic: string, key: string, value: string): BusRecord => ({ topic, key, value, headers: { "message-id": value } });

describe.each(transports)("bus (%s)", (_name, create) => {
  test("every group sees every record; one key's records keep their order; headers travel", async () => {
    const bus = await create();
    const seen: Record<string, BusRecord[]> = { g1: [], g2: [] };
    const group = `order-${crypto.randomUUID()}`;
    for (const g of ["g1", "g2"] as const) {
      bus.subscribe({ group: `${group}-${g}`, topics: ["bus-a"], handler: async (r) => void seen[g]?.push(r) });
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
      handler: async (r) => {
        const a = (attempts.get(r.value) ?? 0) + 1;
        attempts.set(r.value, a);
        if (r.value.endsWith(":0") && a < 3) throw new Error("not yet");
        done.push(r.value);
      },
    });
    await bus.start();
    try {
      const id = crypto.randomUUID();
      await bus.publish([record("bus-b", "same", `${id}:0`), record("bus-b", "same", `${id}:1`)]);
      await eventually(() => done.length === 2, 30_000);
      expect(done).toEqual([`${id}:0`, `${id}:1`]);
      expect(attempts.get(`${id}:0`)).toBe(3);
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
      handler: async () => {
        started = true;
        await gate;
        finished = true;
      },
    });
    await bus.start();
    await bus.publish([record("bus-c", "k", crypto.randomUUID())]);
    await eventually(() => started, 30_000);
    const stopping = bus.stop();
    setTimeout(release, 200);
    await stopping;
    expect(finished).toBe(true);
  });

  test("records published before a group starts are delivered to it", async () => {
    const producer = await create();
    await producer.start();
    const id = crypto.randomUUID();
    await producer.publish([record("bus-d", "k", id)]);
    await producer.stop();
    const consumer = await create();
    const got: string[] = [];
    consumer.subscribe({ group: `late-${crypto.randomUUID()}`, topics: ["bus-d"], handler: async (r) => void got.push(r.value) });
    // The memory bus is per process: its "before" is before start() on the same bus.
    if (_name === "memory") await consumer.publish([record("bus-d", "k", id)]);
    await consumer.start();
    try {
      await eventually(() => got.includes(id), 30_000);
    } finally {
      await consumer.stop();
    }
  });
});
