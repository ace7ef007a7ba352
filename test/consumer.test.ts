/** The batched consumer on a real database: one transaction per batch, poison records alone, duplicates once, redelivery after a crash. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { count, eq } from "drizzle-orm";
import { walletModule } from "../modules/wallet/index";
import * as tables from "../modules/wallet/schema";
import type { BusRecord } from "../src/bus/bus";
import { createKafkaBus } from "../src/bus/kafka";
import { createMemoryBus } from "../src/bus/memory";
import { createMessage, type OrderCreated } from "../src/contracts";
import type { Database } from "../src/db/database";
import { createLogger } from "../src/log";
import { createMessageConsumer } from "../src/messaging/message-consumer";
import { outboxWriter } from "../src/messaging/outbox";
import { eventually } from "./support/eventually";
import { type KafkaMock, startKafkaMock } from "./support/kafka-mock";
import { openModuleDatabase } from "./support/module-db";
import { TOPICS } from "./support/shop-target";

const log = createLogger("silent");
const POISON_USER = 666;
let db: Database;
let mock: KafkaMock | null = null;

beforeAll(async () => {
  db = await openModuleDatabase(walletModule);
});
afterAll(async () => {
  await db?.close();
  await mock?.stop();
});

/** A consumer whose OrderCreated effect is one ledger row per user id and one StepSucceeded; the poison user's throws. */
function consumer() {
  const outbox = outboxWriter(tables, TOPICS, () => {});
  return createMessageConsumer({
    db,
    group: "consumer-test",
    tables,
    outbox,
    log,
    consumers: {
      handlers: {
        OrderCreated: async (tx, m, enqueue) => {
          if (m.payload.user_id === POISON_USER) throw new Error("poison");
          await tx.insert(tables.ledger).values({ userId: m.payload.user_id, kind: "deposit", amountCents: 1, balanceAfterCents: 1 });
          await enqueue(tx, createMessage("StepSucceeded", { order_id: m.order_id, service: "wallet" }));
        },
      },
    },
  });
}

let nextUser = 1000;
const created = (userId = ++nextUser) => {
  const payload: OrderCreated = {
    order_id: crypto.randomUUID(),
    user_id: userId,
    items: [{ product_id: 1, quantity: 1, unit_price_cents: 1 }],
    total_cents: 1,
  };
  return createMessage("OrderCreated", payload);
};
const toRecord = (m: ReturnType<typeof created>): BusRecord => ({
  topic: TOPICS.new_orders,
  key: m.order_id,
  value: JSON.stringify(m),
  headers: {},
});

const effects = async (userId: number) => {
  const [row] = await db.read((q) => q.select({ n: count() }).from(tables.ledger).where(eq(tables.ledger.userId, userId)));
  return row?.n ?? 0;
};
const outboxRows = async (orderId: string) => {
  const [row] = await db.read((q) => q.select({ n: count() }).from(tables.outbox).where(eq(tables.outbox.key, orderId)));
  return row?.n ?? 0;
};
const deadLetters = async (orderId: string) => {
  const [row] = await db.read((q) => q.select({ n: count() }).from(tables.deadLetters).where(eq(tables.deadLetters.key, orderId)));
  return row?.n ?? 0;
};

/** Delivers `records` as a bus would: what the handler does not acknowledge comes again. */
async function deliver(handle: (rs: BusRecord[]) => Promise<number>, records: BusRecord[]): Promise<number> {
  let rest = records;
  let deliveries = 0;
  while (rest.length > 0 && deliveries < 50) {
    deliveries += 1;
    const done = await handle(rest).catch(() => 0);
    rest = rest.slice(done);
  }
  expect(rest).toEqual([]);
  return deliveries;
}

describe("batched consumer", () => {
  test("a batch is one transaction: the inbox, the handlers and their outbox rows together", async () => {
    const c = consumer();
    const messages = Array.from({ length: 20 }, () => created());
    const before = { ...db.stats };
    expect(await c.handle(messages.map(toRecord))).toBe(20);
    expect(db.stats.transactions - before.transactions).toBe(1);
    // BEGIN, inbox, 20 handler inserts, one outbox insert, COMMIT (PGlite takes no locks).
    expect(db.stats.statements - before.statements).toBe(24);
    for (const m of messages) {
      expect(await effects(m.payload.user_id)).toBe(1);
      expect(await outboxRows(m.order_id)).toBe(1);
    }
    expect(c.stats).toMatchObject({ processed: 20, duplicates: 0, batches: 1 });
  });

  test("a poison record in the middle of a batch is dead-lettered alone; its neighbours are applied once", async () => {
    const c = consumer();
    const before = created();
    const poison = created(POISON_USER);
    const after = [created(), created()];
    const deliveries = await deliver(c.handle, [before, poison, ...after].map(toRecord));
    expect(deliveries).toBeGreaterThan(1); // the poison was retried before it was set aside
    for (const m of [before, ...after]) {
      expect(await effects(m.payload.user_id)).toBe(1);
      expect(await outboxRows(m.order_id)).toBe(1);
    }
    expect(await outboxRows(poison.order_id)).toBe(0);
    expect(await deadLetters(poison.order_id)).toBe(1);
    expect(c.stats).toMatchObject({ processed: 3, dead: 1 });
  });

  test("malformed records in a batch are dead-lettered in the batch's transaction; the others applied", async () => {
    const c = consumer();
    const good = created();
    const junk: BusRecord = { topic: TOPICS.new_orders, key: crypto.randomUUID(), value: "{not json", headers: {} };
    expect(await c.handle([junk, toRecord(good)])).toBe(2);
    expect(await deadLetters(junk.key)).toBe(1);
    expect(await effects(good.payload.user_id)).toBe(1);
    expect(c.stats).toMatchObject({ processed: 1, dead: 1, batches: 1 });
  });

  test("duplicates inside one batch and across batches are applied once", async () => {
    const c = consumer();
    const [a, b] = [created(), created()];
    const sameOrderNewEnvelope = { ...a, id: crypto.randomUUID() };
    expect(await c.handle([a, a, b, a].map(toRecord))).toBe(4);
    expect(c.stats).toMatchObject({ processed: 2, duplicates: 2 });
    expect(await c.handle([b, a].map(toRecord))).toBe(2);
    expect(c.stats).toMatchObject({ processed: 2, duplicates: 4 });
    // A new envelope is a new message to the inbox: the handler's own rules make it a no-op in
    // wallet (one debit per order); here it shows the inbox keys on the envelope id.
    expect(await c.handle([toRecord(sameOrderNewEnvelope)])).toBe(1);
    expect(c.stats.processed).toBe(3);
    expect(await effects(b.payload.user_id)).toBe(1);
    expect(await outboxRows(b.order_id)).toBe(1);
  });
});

const transports: [string, () => Promise<ReturnType<typeof createMemoryBus>>][] = [
  ["memory", async () => createMemoryBus(log)],
  [
    "kafka",
    async () => {
      mock ??= await startKafkaMock(Object.values(TOPICS).map((t) => `${t}:3`));
      return createKafkaBus(
        { brokers: [mock.brokers], clientId: "consumer-test", sessionTimeoutMs: 6000, fetchMaxWaitMs: 100, mockBrokerQuirks: true },
        log,
      );
    },
  ],
];

describe.each(transports)("a crash between the database commit and the offset commit (%s)", (name, create) => {
  test("the record is delivered again and applied once", async () => {
    const c = consumer();
    const group = `crash-${crypto.randomUUID()}`;
    const m = created();
    // First life: the transaction commits, then the process "dies" before acknowledging.
    const first = await create();
    let applied = false;
    first.subscribe({
      group,
      topics: [TOPICS.new_orders],
      handler: async (rs) => {
        await c.handle(rs);
        applied = true;
        throw new Error("crashed before the offset commit");
      },
    });
    await first.start();
    const published = first.publish([toRecord(m)]).catch(() => {});
    await eventually(() => applied, 30_000);
    await first.stop();
    await published;
    expect(await effects(m.payload.user_id)).toBe(1);

    // Second life: the same group gets the record again (in one process, the relay sends its
    // still-unpublished outbox row again) and the inbox turns it into a duplicate.
    const second = await create();
    const seen: string[] = [];
    second.subscribe({
      group,
      topics: [TOPICS.new_orders],
      handler: async (rs) => {
        seen.push(...rs.map((r) => r.key));
        return c.handle(rs);
      },
    });
    const again = name === "memory" ? second.publish([toRecord(m)]) : Promise.resolve();
    await second.start();
    try {
      await again;
      await eventually(() => seen.includes(m.order_id) && c.stats.duplicates >= 1, 30_000);
      expect(await effects(m.payload.user_id)).toBe(1);
      expect(await outboxRows(m.order_id)).toBe(1);
    } finally {
      await second.stop();
    }
  });
});
