/** The outbox relay: rows stay unpublished until the bus confirms them, failed publishes come back, a restart resends what was in flight. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { eq } from "drizzle-orm";
import { walletModule } from "../modules/wallet/index";
import * as tables from "../modules/wallet/schema";
import type { BusRecord } from "../src/bus/bus";
import { createMemoryBus } from "../src/bus/memory";
import { createMessage } from "../src/contracts";
import type { Database } from "../src/db/database";
import { createLogger } from "../src/log";
import { outboxWriter } from "../src/messaging/outbox";
import { startOutboxRelay } from "../src/messaging/outbox-relay";
import { eventually } from "./support/eventually";
import { openModuleDatabase } from "./support/module-db";
import { TOPICS } from "./support/shop-target";
import { stubBus } from "./support/stub-bus";

const log = createLogger("silent");
let db: Database;

beforeAll(async () => {
  db = await openModuleDatabase(walletModule);
});
afterAll(() => db?.close());

/** Writes one StepSucceeded to the outbox and returns its order id. */
async function enqueueOne(): Promise<string> {
  const orderId = crypto.randomUUID();
  const { enqueue } = outboxWriter(tables, TOPICS, () => {});
  await db.transaction((tx) => enqueue(tx, createMessage("StepSucceeded", { order_id: orderId, service: "wallet" })));
  return orderId;
}

const stateOf = async (orderId: string) => {
  const [row] = await db.read((q) => q.select({ state: tables.outbox.state }).from(tables.outbox).where(eq(tables.outbox.key, orderId)));
  return row?.state;
};

/** A memory bus with one group on the success topic whose handler is held until released. */
function heldBus() {
  const bus = createMemoryBus(log);
  const seen: BusRecord[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  bus.subscribe({
    group: "relay-test",
    topics: [TOPICS.success],
    handler: async (rs) => {
      await gate;
      seen.push(...rs);
      return rs.length;
    },
  });
  return { bus, seen, release };
}

describe("outbox relay", () => {
  test("a row is in flight until every group applied it, then published", async () => {
    const { bus, seen, release } = heldBus();
    await bus.start();
    const relay = await startOutboxRelay({ db, bus, tables, pollMs: 50, log });
    try {
      const orderId = await enqueueOne();
      await eventually(async () => (await stateOf(orderId)) === "in_flight");
      expect(seen).toEqual([]);
      release();
      await eventually(async () => (await stateOf(orderId)) === "published");
      expect(seen.map((r) => r.key)).toContain(orderId);
    } finally {
      release();
      await relay.stop();
      await bus.stop();
    }
  });

  test("a publish that fails puts the rows back to pending and they are sent again", async () => {
    let fail = true;
    const sent: BusRecord[] = [];
    const flaky = stubBus(async (records) => {
      if (fail) {
        fail = false;
        throw new Error("broker away");
      }
      sent.push(...records);
    });
    const orderId = await enqueueOne();
    const relay = await startOutboxRelay({ db, bus: flaky, tables, pollMs: 60_000, log });
    try {
      await eventually(async () => (await stateOf(orderId)) === "published");
      expect(sent.filter((r) => r.key === orderId)).toHaveLength(1);
      const [row] = await db.read((q) => q.select().from(tables.outbox).where(eq(tables.outbox.key, orderId)));
      expect(row).toMatchObject({ attempts: 1, lastError: "broker away" });
    } finally {
      await relay.stop();
    }
  });

  test("a claim whose answer was lost (committed, then the connection failed) is sent anyway, without a restart", async () => {
    const sent: BusRecord[] = [];
    const bus = stubBus(async (records) => {
      sent.push(...records);
    });
    // The first claim commits, then its answer is lost as when the database goes away mid-reply.
    let lose = true;
    const lossy: Database = {
      ...db,
      autocommit: async (fn) => {
        const result = await db.autocommit(fn);
        if (lose && Array.isArray(result) && result.length > 0) {
          lose = false;
          throw Object.assign(new Error("connection closed"), { code: "CONNECTION_CLOSED" });
        }
        return result;
      },
    };
    const orderId = await enqueueOne();
    const relay = await startOutboxRelay({ db: lossy, bus, tables, pollMs: 60_000, log });
    try {
      await eventually(async () => (await stateOf(orderId)) === "published");
      expect(lose).toBe(false);
      expect(sent.filter((r) => r.key === orderId)).toHaveLength(1);
    } finally {
      await relay.stop();
    }
  });

  test("rows left in flight by a process that died are sent again by the next relay", async () => {
    // First life: the bus never confirms (the process "dies" with the record unapplied).
    const first = heldBus();
    await first.bus.start();
    const dying = await startOutboxRelay({ db, bus: first.bus, tables, pollMs: 60_000, log });
    const orderId = await enqueueOne();
    dying.nudge();
    await eventually(async () => (await stateOf(orderId)) === "in_flight");
    await dying.stop();
    expect(await stateOf(orderId)).toBe("in_flight");

    // Second life: a new relay reclaims the row and delivers it.
    const second = heldBus();
    second.release();
    await second.bus.start();
    const relay = await startOutboxRelay({ db, bus: second.bus, tables, pollMs: 60_000, log });
    try {
      await eventually(async () => (await stateOf(orderId)) === "published");
      expect(second.seen.map((r) => r.key)).toContain(orderId);
    } finally {
      await relay.stop();
      await second.bus.stop();
      first.release();
      await first.bus.stop();
    }
  });
});
