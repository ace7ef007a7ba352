/**
 * The AsyncAPI document of the bus: valid for @asyncapi/parser, complete, with examples the zod
 * contracts accept, and true: MESSAGE_FLOWS (who sends and who receives what) is compared with
 * each module's consumers.ts, with the types its code creates, and with what a running saga writes
 * to each module's outbox and inbox; the relay's records carry the documented topic, key and headers.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Parser } from "@asyncapi/parser";
import { REGISTRY_TOPICS, registryConsumers } from "../modules/registry/consumers";
import * as registryTables from "../modules/registry/schema";
import { STORAGE_TOPICS, storageConsumers } from "../modules/storage/consumers";
import * as storageTables from "../modules/storage/schema";
import { WALLET_TOPICS, walletConsumers } from "../modules/wallet/consumers";
import { walletModule } from "../modules/wallet/index";
import * as walletTables from "../modules/wallet/schema";
import type { BusRecord } from "../src/bus/bus";
import { createRecordSigner } from "../src/bus/signing";
import { loadSettings } from "../src/config";
import { createMessage, MESSAGES, type Message, type MessageType, parseMessage, type ServiceName } from "../src/contracts";
import { MESSAGE_FLOWS, messagesMarkdown, modulesOf } from "../src/contracts/flows";
import { type Topics, TopicsSchema } from "../src/contracts/topics";
import type { Database } from "../src/db/database";
import { asyncApiDocument, exampleMessages, type JsonObject, RecordKeySchema, recordHeadersSchema } from "../src/http/asyncapi-document";
import { createLogger } from "../src/log";
import { outboxWriter } from "../src/messaging/outbox";
import { type OutboxRelay, startOutboxRelay } from "../src/messaging/outbox-relay";
import { eventually } from "./support/eventually";
import { adminHeaders, call, getJson } from "./support/http";
import { openModuleDatabase } from "./support/module-db";
import { startInProcess, TEST_BUS_SIGNING_KEY, testEnv } from "./support/shop-target";
import { stubBus } from "./support/stub-bus";

const ROOT = join(import.meta.dir, "..");
const TYPES = Object.keys(MESSAGES) as MessageType[];
const SERVICES: ServiceName[] = ["registry", "wallet", "storage"];
const DEFAULT_TOPICS: Topics = TopicsSchema.parse(undefined);
const doc = asyncApiDocument({ topics: DEFAULT_TOPICS, brokers: ["localhost:9092"], partitions: 3 });

/** Parts of the document the checks read (it is built as plain JSON). */
type Doc = {
  channels: Record<string, { address: string; messages: Record<string, { $ref: string }> }>;
  components: {
    messages: Record<string, { payload: JsonObject; headers: JsonObject; examples: { headers: JsonObject; payload: JsonObject }[] }>;
  };
};
const view = (d: JsonObject) => d as unknown as Doc;

/** Each module's consumers.ts: what it handles and which topics (keys of Topics) its group reads (read once every import is done). */
const consumersOf = (): Record<ServiceName, { handles: string[]; topics: readonly (keyof Topics)[] }> => ({
  registry: { handles: Object.keys(registryConsumers().handlers), topics: REGISTRY_TOPICS },
  wallet: { handles: Object.keys(walletConsumers.handlers), topics: WALLET_TOPICS },
  storage: { handles: Object.keys(storageConsumers.handlers), topics: STORAGE_TOPICS },
});

/** "module side type" for every pair MESSAGE_FLOWS lists. */
const flowPairs = (side: "producers" | "consumers") => TYPES.flatMap((t) => modulesOf(t, side).map((m) => `${m} ${t}`)).sort();

describe("the document", () => {
  test("is valid AsyncAPI 3.0.0: no error and no warning from @asyncapi/parser", async () => {
    const { document, diagnostics } = await new Parser().parse(JSON.stringify(doc));
    // Severity 0 is an error, 1 a warning; 2 and 3 are information and hints (such as "3.1.0 exists").
    const serious = diagnostics.filter((d) => d.severity <= 1).map((d) => `${d.code} at ${d.path.join(".")}: ${d.message}`);
    expect(serious).toEqual([]);
    expect(document).toBeDefined();
    expect(document?.version()).toBe("3.0.0");
    expect(
      document
        ?.allMessages()
        .all()
        .map((m) => m.name())
        .sort(),
    ).toEqual([...TYPES].sort());
  });

  test("every contract message type is a message on the channel of its topic, at the configured address", () => {
    const topics: Topics = { new_orders: "shop.orders.new", rejected_orders: "shop.orders.rejected", success: "shop.orders.success" };
    const d = view(asyncApiDocument({ topics, brokers: ["a:9092", "b:9092"], partitions: 6 }));
    expect(Object.keys(d.channels).sort()).toEqual(Object.keys(topics).sort());
    for (const [key, channel] of Object.entries(d.channels)) expect(channel.address).toBe(topics[key as keyof Topics]);
    for (const type of TYPES) {
      const message = d.components.messages[type];
      expect(message, type).toBeDefined();
      expect(d.channels[MESSAGES[type].topic]?.messages[type]).toEqual({ $ref: `#/components/messages/${type}` });
      // The payload schema is the envelope with this type's payload (from the zod schemas, not written by hand).
      const props = message?.payload.properties as Record<string, JsonObject>;
      expect(props.type?.const).toBe(type);
      expect(Object.keys(props.payload?.properties as JsonObject).sort()).toEqual(Object.keys(MESSAGES[type].schema.shape).sort());
    }
  });

  test("every example is an envelope parseMessage accepts, with valid headers and key", () => {
    const d = view(doc);
    for (const type of TYPES) {
      const examples = d.components.messages[type]?.examples ?? [];
      expect(examples.length, type).toBeGreaterThan(0);
      expect(examples.map((e) => e.payload)).toEqual(exampleMessages(type) as unknown as JsonObject[]);
      for (const example of examples) {
        const parsed = parseMessage(JSON.stringify(example.payload));
        if (!parsed.ok) throw new Error(`${type} example: ${parsed.error}`);
        expect(parsed.message.type).toBe(type);
        expect(recordHeadersSchema(type).strict().safeParse(example.headers).error).toBeUndefined();
        expect(RecordKeySchema.safeParse(parsed.message.order_id).success).toBe(true);
      }
    }
  });

  test("operations say who sends and who receives each message, exactly as MESSAGE_FLOWS does", async () => {
    const { document } = await new Parser().parse(JSON.stringify(doc));
    const seen = { producers: [] as string[], consumers: [] as string[] };
    for (const op of document?.operations().all() ?? []) {
      const [module] = op
        .tags()
        .all()
        .map((t) => t.name());
      const [channel] = op.channels().all();
      for (const m of op.messages().all()) {
        const type = m.name() as MessageType;
        expect(channel?.address()).toBe(DEFAULT_TOPICS[MESSAGES[type].topic]);
        seen[op.isSend() ? "producers" : "consumers"].push(`${module} ${type}`);
      }
    }
    expect(seen.producers.sort()).toEqual(flowPairs("producers"));
    expect(seen.consumers.sort()).toEqual(flowPairs("consumers"));
  });

  test("docs/messages.md holds the generated tables, and README.md links it", () => {
    const page = readFileSync(join(ROOT, "docs/messages.md"), "utf8");
    const table = messagesMarkdown(DEFAULT_TOPICS);
    if (!page.includes(table)) throw new Error(`docs/messages.md is out of date; its tables should read:\n\n${table}\n`);
    expect(readFileSync(join(ROOT, "README.md"), "utf8")).toContain("docs/messages.md");
  });
});

describe("MESSAGE_FLOWS is what the modules do", () => {
  test("its receivers are each module's consumers.ts: the types it handles and the topics its group reads", () => {
    const consumers = consumersOf();
    for (const module of SERVICES) {
      const receives = TYPES.filter((t) => modulesOf(t, "consumers").includes(module));
      expect([...consumers[module].handles].sort(), module).toEqual([...receives].sort());
      const topics = [...new Set(receives.map((t) => MESSAGES[t].topic))].sort();
      expect([...consumers[module].topics].sort(), module).toEqual(topics);
    }
  });

  test("its senders are the types each module's code passes to createMessage", () => {
    for (const module of SERVICES) {
      const created = new Set<string>();
      for (const file of new Bun.Glob("**/*.ts").scanSync(join(ROOT, "modules", module))) {
        if (file.endsWith(".test.ts")) continue;
        const source = readFileSync(join(ROOT, "modules", module, file), "utf8");
        for (const call of source.matchAll(/\bcreateMessage\s*\(\s*(?:"(\w+)")?/g)) {
          // A type chosen at run time could not be checked here.
          if (!call[1]) throw new Error(`modules/${module}/${file}: createMessage without a literal type`);
          created.add(call[1]);
        }
      }
      const sends = TYPES.filter((t) => modulesOf(t, "producers").includes(module));
      expect([...created].sort(), module).toEqual([...sends].sort());
    }
  });
});

describe("the outbox relay's records", () => {
  let db: Database;
  let relay: OutboxRelay | null = null;
  const published: BusRecord[] = [];
  const capture = stubBus(async (records) => void published.push(...records));
  beforeAll(async () => {
    db = await openModuleDatabase(walletModule);
  });
  afterAll(async () => {
    await relay?.stop();
    await db?.close();
  });

  test("have the documented topic (channel address), key (order id) and headers (signed)", async () => {
    const signer = createRecordSigner(TEST_BUS_SIGNING_KEY);
    relay = await startOutboxRelay({ db, bus: capture, tables: walletTables, pollMs: 50, log: createLogger("silent"), signer });
    const { enqueue } = outboxWriter(walletTables, DEFAULT_TOPICS, () => relay?.nudge());
    const messages: Message[] = TYPES.flatMap((t) => MESSAGE_FLOWS[t].examples.map((e) => createMessage(t, e.payload) as Message));
    await db.transaction(async (tx) => {
      for (const m of messages) await enqueue(tx, m);
    });
    await eventually(() => published.length >= messages.length);
    const d = view(doc);
    for (const m of messages) {
      const record = published.find((r) => r.headers["message-id"] === m.id);
      if (!record) throw new Error(`${m.type} ${m.id} was not published`);
      expect(record.topic).toBe(d.channels[MESSAGES[m.type].topic]?.address as string);
      expect(record.key).toBe(m.order_id);
      expect(RecordKeySchema.safeParse(record.key).success).toBe(true);
      // strict(): a header the relay adds is a header the document must describe.
      expect(recordHeadersSchema(m.type).strict().safeParse(record.headers).error).toBeUndefined();
      expect(signer.verify(record)).toBe(true);
      const parsed = parseMessage(record.value);
      expect(parsed.ok && parsed.message.type).toBe(m.type);
    }
  });
});

describe("a running shop", () => {
  const topics: Topics = { new_orders: "doc.new_orders", rejected_orders: "doc.rejected_orders", success: "doc.success" };
  const env = {
    TOPIC_NEW_ORDERS: topics.new_orders,
    TOPIC_REJECTED_ORDERS: topics.rejected_orders,
    TOPIC_SUCCESS: topics.success,
    KAFKA_BROKERS: "broker-1:9092,broker-2:9092",
  };
  let t: Awaited<ReturnType<typeof startInProcess>>;
  beforeAll(async () => {
    t = await startInProcess(env);
  });
  afterAll(() => t?.stop());

  test("serves the document at GET /asyncapi.json on every service, under its configured topics and brokers", async () => {
    const settings = loadSettings(testEnv(env));
    const expected = asyncApiDocument({ topics, brokers: settings.KAFKA_BROKERS, partitions: settings.BUS_PARTITIONS });
    for (const base of Object.values(t.urls)) {
      const res = await fetch(`${base}/asyncapi.json`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain("application/json");
      expect(await res.json()).toEqual(expected);
      const openapi = await getJson(base, "/openapi.json");
      expect(openapi.paths["/asyncapi.json"]?.get?.summary).toContain("AsyncAPI");
    }
    expect(view(expected).channels.new_orders?.address).toBe("doc.new_orders");
  });

  test("a saga writes to each module's outbox and inbox exactly the types MESSAGE_FLOWS gives it", async () => {
    const { registry, wallet, storage } = t.urls;
    // 701 has money, 702 has no wallet; 71 is in stock, 72 is not.
    expect((await call(wallet, "POST", "/wallets/701/deposits", { amount_cents: 100_000 }, adminHeaders)).status).toBe(201);
    expect((await call(storage, "POST", "/stock/71/receipts", { quantity: 10 }, adminHeaders)).status).toBe(201);
    const place = async (user: number, product: number) => {
      const r = await call(registry, "POST", "/orders", { user_id: user, items: [{ product_id: product, quantity: 1 }] });
      expect(r.status).toBe(201);
      return (r.body as { id: string }).id;
    };
    // Completed; rejected by storage (wallet refunds); rejected by wallet (storage releases).
    const ids = [await place(701, 71), await place(701, 72), await place(702, 71)];
    const db = t.shop.db;
    const tables = { registry: registryTables, wallet: walletTables, storage: storageTables };
    const observed = async () => {
      const pairs = { producers: [] as string[], consumers: [] as string[] };
      for (const module of SERVICES) {
        const { outbox, inbox } = tables[module];
        const sent = await db.read((q) => q.selectDistinct({ type: outbox.type }).from(outbox));
        const received = await db.read((q) => q.selectDistinct({ type: inbox.type }).from(inbox));
        pairs.producers.push(...sent.map((r) => `${module} ${r.type}`));
        pairs.consumers.push(...received.map((r) => `${module} ${r.type}`));
      }
      return { producers: pairs.producers.sort(), consumers: pairs.consumers.sort() };
    };
    const expected = { producers: flowPairs("producers"), consumers: flowPairs("consumers") };
    await eventually(async () => JSON.stringify(await observed()) === JSON.stringify(expected), 30_000).catch(() => {});
    expect(await observed()).toEqual(expected);
    const statuses = await Promise.all(ids.map(async (id) => (await getJson(registry, `/orders/${id}`)).status));
    expect(statuses).toEqual(["completed", "rejected", "rejected"]);
  });
});
