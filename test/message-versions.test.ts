/**
 * A message's previous version during a rolling upgrade (ADR 0015): a writer pinned to it by
 * BUS_WRITE_PREVIOUS_VERSIONS writes the old envelope and payload, and a reader takes an old
 * record as the current version. No message has a previous version yet (every one is at its
 * first), so these tests give StepSucceeded one of their own: "version 9", whose payload named
 * the service `by`. The code under test is the one production runs; only the list differs.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { z } from "zod";
import { walletModule } from "../modules/wallet/index";
import * as tables from "../modules/wallet/schema";
import type { BusRecord } from "../src/bus/bus";
import { createMemoryBus } from "../src/bus/memory";
import { ConfigError, loadSettings, pinnedWriters } from "../src/config";
import {
  createMessage,
  type Message,
  type MessageType,
  type PreviousVersions,
  parseMessage,
  readableVersions,
  writtenAs,
} from "../src/contracts";
import type { Database } from "../src/db/database";
import { createLogger } from "../src/log";
import { outboxWriter } from "../src/messaging/outbox";
import { startOutboxRelay } from "../src/messaging/outbox-relay";
import { eventually } from "./support/eventually";
import { openModuleDatabase } from "./support/module-db";
import { TOPICS } from "./support/shop-target";

const OldStepSucceeded = z.object({ order_id: z.uuid(), by: z.enum(["wallet", "storage"]) });
const PREVIOUS: PreviousVersions = {
  StepSucceeded: {
    version: 9,
    schema: OldStepSucceeded,
    upgrade: (p) => {
      const old = OldStepSucceeded.parse(p);
      return { order_id: old.order_id, service: old.by };
    },
    downgrade: (p) => {
      const now = p as { order_id: string; service: string };
      return { order_id: now.order_id, by: now.service };
    },
  },
};
const step = () => createMessage("StepSucceeded", { order_id: crypto.randomUUID(), service: "wallet" });

describe("writing and reading a previous version", () => {
  test("a pinned type is written at its previous version, in its shape; other types and unpinned writers as they are", () => {
    const m = step();
    const old = writtenAs(m, new Set<MessageType>(["StepSucceeded"]), PREVIOUS);
    expect(old).toEqual({ ...m, version: 9, payload: { order_id: m.order_id, by: "wallet" } } as unknown as Message);
    expect(writtenAs(m, new Set<MessageType>(), PREVIOUS)).toBe(m);
    const created = createMessage("OrderCreated", {
      order_id: crypto.randomUUID(),
      user_id: 1,
      items: [{ product_id: 1, quantity: 1, unit_price_cents: 5 }],
      total_cents: 5,
    });
    expect(writtenAs(created, new Set<MessageType>(["StepSucceeded"]), PREVIOUS)).toBe(created);
  });

  test("a downgrade that does not fit the previous schema throws (a bug, never written)", () => {
    const broken: PreviousVersions = {
      StepSucceeded: { ...(PREVIOUS.StepSucceeded as NonNullable<PreviousVersions["StepSucceeded"]>), downgrade: () => ({ by: "wallet" }) },
    };
    expect(() => writtenAs(step(), new Set<MessageType>(["StepSucceeded"]), broken)).toThrow();
  });

  test("a reader takes the previous version as the current one while it is listed, and refuses it once it is not", () => {
    const m = step();
    const old = JSON.stringify(writtenAs(m, new Set<MessageType>(["StepSucceeded"]), PREVIOUS));
    expect(readableVersions("StepSucceeded", PREVIOUS)).toEqual([9, 1, 2]);
    expect(parseMessage(old, PREVIOUS)).toEqual({ ok: true, message: m });
    expect(readableVersions("StepSucceeded")).toEqual([1, 2]);
    expect(parseMessage(old)).toEqual({ ok: false, error: "unsupported version 9" });
    // An old record that is not the old shape is named as such (dead-lettered, never upgraded).
    const bad = JSON.stringify({ ...m, version: 9 });
    expect(parseMessage(bad, PREVIOUS)).toMatchObject({
      ok: false,
      error: expect.stringContaining("bad StepSucceeded version 9 payload: by"),
    });
  });
});

describe("BUS_WRITE_PREVIOUS_VERSIONS", () => {
  test("names types with a previous version, or all; unknown types and types without one are config errors", () => {
    expect([...pinnedWriters(["StepSucceeded"], PREVIOUS)]).toEqual(["StepSucceeded"]);
    expect([...pinnedWriters(["all"], PREVIOUS)]).toEqual(["StepSucceeded"]);
    expect([...pinnedWriters([], PREVIOUS)]).toEqual([]);
    expect(() => pinnedWriters(["StepSucceded"], PREVIOUS)).toThrow(ConfigError);
    expect(() => pinnedWriters(["StepSucceded"], PREVIOUS)).toThrow(/unknown message type "StepSucceded"/);
    expect(() => pinnedWriters(["OrderCreated"], PREVIOUS)).toThrow(/OrderCreated is written at version 1 and has no previous version/);
  });

  test("as shipped (no previous versions): all pins nothing, a named type is refused at start", () => {
    expect([...pinnedWriters(loadSettings({ BUS_WRITE_PREVIOUS_VERSIONS: "all" }).BUS_WRITE_PREVIOUS_VERSIONS)]).toEqual([]);
    expect(() => loadSettings({ BUS_WRITE_PREVIOUS_VERSIONS: "StepSucceeded" })).toThrow(
      "BUS_WRITE_PREVIOUS_VERSIONS=StepSucceeded: StepSucceeded is written at version 1 and has no previous version to write",
    );
    expect(loadSettings({}).BUS_WRITE_PREVIOUS_VERSIONS).toEqual([]);
  });
});

describe("through the outbox and the bus", () => {
  let db: Database;
  beforeAll(async () => {
    db = await openModuleDatabase(walletModule);
  });
  afterAll(() => db?.close());

  test("a pinned outbox relays the previous version; a reader that lists it gets the current message", async () => {
    const bus = createMemoryBus(createLogger("silent"));
    const seen: BusRecord[] = [];
    bus.subscribe({ group: "versions", topics: [TOPICS.success], handler: async (rs) => (seen.push(...rs), rs.length) });
    await bus.start();
    const relay = await startOutboxRelay({ db, bus, tables, pollMs: 50, log: createLogger("silent") });
    const pinned = outboxWriter(tables, TOPICS, () => relay.nudge(), {
      writePrevious: new Set<MessageType>(["StepSucceeded"]),
      previous: PREVIOUS,
    });
    const current = outboxWriter(tables, TOPICS, () => relay.nudge());
    const [a, b] = [step(), step()];
    try {
      await db.transaction((tx) => pinned.enqueue(tx, a));
      await db.transaction((tx) => current.enqueue(tx, b));
      await eventually(() => seen.some((r) => r.key === a.order_id) && seen.some((r) => r.key === b.order_id));
    } finally {
      await relay.stop();
      await bus.stop();
    }
    const envelope = (id: string) =>
      JSON.parse((seen.find((r) => r.key === id) as BusRecord).value) as { version: number; payload: unknown };
    expect(envelope(a.order_id)).toMatchObject({ version: 9, payload: { order_id: a.order_id, by: "wallet" } });
    expect(envelope(b.order_id)).toMatchObject({ version: 1, payload: { order_id: b.order_id, service: "wallet" } });
    const read = parseMessage((seen.find((r) => r.key === a.order_id) as BusRecord).value, PREVIOUS);
    expect(read.ok && read.message.payload).toEqual(a.payload);
  });
});
