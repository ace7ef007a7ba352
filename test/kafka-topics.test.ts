/** The split deployment's topics as another Kafka client sees them; dead records; a broker outage. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { signRecord } from "../src/bus/signing";
import { EnvelopeSchema, MESSAGES, parseMessage } from "../src/contracts";
import { eventually } from "./support/eventually";
import { adminHeaders, call, getJson } from "./support/http";
import { startShopProcess } from "./support/process";
import { TEST_BUS_SIGNING_KEY } from "./support/shop-target";
import { type SplitShop, startSplitShop } from "./support/split-shop";

/** Bounds for waits on a busy machine: generous, since each is a condition, not a sleep. */
const SETTLE_MS = 120_000;
const TEST_MS = 300_000;

let shop: SplitShop;
beforeAll(async () => {
  // The saga deadline is far away: an order slowed down by a loaded machine or by the outage
  // below must complete, not time out (the fixture's 30 s is meant for quick sagas).
  shop = await startSplitShop({ REGISTRY_SAGA_DEADLINE_SECONDS: "600" });
}, 180_000);
afterAll(async () => {
  await shop?.stop();
}, 60_000);

/** Reads a topic from the beginning with kcat: one JSON object per record. */
async function readTopic(topic: string): Promise<{ key: string; payload: string; headers: string[] }[]> {
  const proc = Bun.spawn(["kcat", "-b", shop.brokers, "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q"], {
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  expect(code).toBe(0);
  return out
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line));
}

const placeAndSettle = async (userId: number, productId: number, quantity: number) => {
  const r = await call(shop.urls.registry, "POST", "/orders", { user_id: userId, items: [{ product_id: productId, quantity }] });
  expect(r.status).toBe(201);
  return eventually(async () => {
    const o = await getJson(shop.urls.registry, `/orders/${r.body.id}`);
    return o.status === "pending" ? false : (o as { id: string; status: string });
  }, SETTLE_MS);
};

/** An admin write that must succeed: a refused deposit would turn an order's outcome around. */
const admin = async (base: string, path: string, body: unknown) => {
  const r = await call(base, "POST", path, body, adminHeaders);
  expect(r.status).toBe(201);
};

describe("topics seen by kcat", () => {
  test(
    "every record is a plain JSON envelope keyed by its order id, with id and type headers",
    async () => {
      await admin(shop.urls.wallet, "/wallets/71/deposits", { amount_cents: 1500 });
      await admin(shop.urls.storage, "/stock/71/receipts", { quantity: 5 });
      const ok = await placeAndSettle(71, 71, 1);
      const short = await placeAndSettle(71, 71, 1); // 500 cents left: insufficient funds
      expect([ok.status, short.status]).toEqual(["completed", "rejected"]);

      // storage may hear wallet's rejection of `short` before its creation (topics are read
      // concurrently) and then never reserve: success_topics surely holds only `ok`'s records.
      const last: Record<string, string> = { new_orders: short.id, rejected_orders: short.id, success: ok.id };
      const seen = new Set<string>();
      for (const [topicKey, topic] of Object.entries(shop.topics)) {
        const records = await eventually(
          async () => {
            const rs = await readTopic(topic);
            return rs.some((r) => r.key === last[topicKey]) ? rs : false;
          },
          SETTLE_MS,
          500,
        );
        for (const r of records) {
          const parsed = parseMessage(r.payload);
          if (!parsed.ok) throw new Error(`${topic}: ${parsed.error}: ${r.payload}`);
          const m = parsed.message;
          expect(EnvelopeSchema.parse(JSON.parse(r.payload)).id).toBe(m.id);
          expect(MESSAGES[m.type].topic).toBe(topicKey as keyof typeof shop.topics);
          expect(r.key).toBe(m.order_id);
          const headers = Object.fromEntries(
            Array.from({ length: r.headers.length / 2 }, (_, i) => [r.headers[2 * i], r.headers[2 * i + 1]]),
          );
          // Signed with the shop's BUS_SIGNING_KEY over topic, key and value (src/bus/signing.ts).
          const signature = signRecord(TEST_BUS_SIGNING_KEY, { topic, key: r.key, value: r.payload });
          expect(headers).toEqual({ "message-id": m.id, "message-type": m.type, signature });
          seen.add(`${m.type}:${m.order_id === ok.id ? "ok" : m.order_id === short.id ? "short" : "other"}`);
        }
      }
      expect([...seen]).toEqual(
        expect.arrayContaining(["OrderCreated:ok", "StepSucceeded:ok", "OrderCreated:short", "OrderRejected:short"]),
      );
    },
    TEST_MS,
  );

  test(
    "a malformed record is committed past: a restarted consumer does not see it again",
    async () => {
      await shop.publish(shop.topics.new_orders, "junk", "{{{ not json");
      await eventually(async () => {
        const text = await (await fetch(`${shop.urls.wallet}/metrics`)).text();
        return /shop_messages_consumed_total\{outcome="dead"\} [1-9]/.test(text);
      }, SETTLE_MS);
      expect(await shop.processes.wallet.stop("SIGTERM")).toBe(0);
      // Waits for its "ready" line: the group joined, so it consumes what comes next.
      const wallet = await startShopProcess(
        ["--modules", "wallet"],
        { ...shop.env, WALLET_PORT: new URL(shop.urls.wallet).port },
        1,
        SETTLE_MS,
      );
      shop.processes.wallet = wallet;
      await admin(shop.urls.wallet, "/wallets/72/deposits", { amount_cents: 5000 });
      await admin(shop.urls.storage, "/stock/72/receipts", { quantity: 1 });
      expect((await placeAndSettle(72, 72, 1)).status).toBe("completed");
      const text = await (await fetch(`${shop.urls.wallet}/metrics`)).text();
      expect(text).toContain('shop_messages_consumed_total{outcome="dead"} 0');
      expect(text).toMatch(/shop_messages_consumed_total\{outcome="processed"\} [1-9]/);
    },
    TEST_MS,
  );
});

describe("a broker outage", () => {
  test(
    "orders placed while Kafka is down complete once it is back; no service dies",
    async () => {
      await admin(shop.urls.wallet, "/wallets/73/deposits", { amount_cents: 5000 });
      await admin(shop.urls.storage, "/stock/73/receipts", { quantity: 2 });
      shop.kafka.setBroker("down");
      let placed: { id: string };
      try {
        const r = await call(shop.urls.registry, "POST", "/orders", { user_id: 73, items: [{ product_id: 73, quantity: 1 }] });
        expect(r.status).toBe(201); // the outbox keeps it until the broker is back
        placed = r.body;
        await eventually(async () => (await call(shop.urls.registry, "GET", "/health?timeout=1")).status === 503, SETTLE_MS, 100);
      } finally {
        shop.kafka.setBroker("up");
      }
      const done = await eventually(
        async () => {
          const o = await getJson(shop.urls.registry, `/orders/${placed.id}`);
          return o.status === "pending" ? false : o;
        },
        SETTLE_MS,
        250,
      );
      expect(done.status).toBe("completed");
      expect(await getJson(shop.urls.wallet, "/wallets/73")).toMatchObject({ balance_cents: 4000 });
      for (const p of Object.values(shop.processes)) expect(p.proc.exitCode).toBeNull();
      for (const base of Object.values(shop.urls)) {
        // 200 once its consumer group has rejoined after the outage.
        await eventually(async () => (await call(base, "GET", "/health?timeout=2")).status === 200, SETTLE_MS, 250);
      }
    },
    TEST_MS,
  );
});
