/**
 * Signed bus records (docs/security.md, "Signed records"; src/bus/signing.ts), on a running shop: a record
 * without a valid signature, on any topic, is dead-lettered as "bad signature" by every reader and
 * changes nothing, and its redrive is 422; a signature is bound to its record's topic and key; the
 * previous key is accepted while BUS_SIGNING_KEY_PREVIOUS names it, and a letter refused under the
 * old settings is redriven once the key is known. Forgeries on every topic run on one process
 * (memory bus, PGlite) and on the split deployment (Kafka, PostgreSQL, three processes).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BAD_SIGNATURE, SIGNATURE_HEADER, signRecord } from "../src/bus/signing";
import { createMessage, type Message } from "../src/contracts";
import { eventually } from "./support/eventually";
import { adminHeaders, call, getJson } from "./support/http";
import { type ShopTarget, startInProcess, TEST_BUS_SIGNING_KEY } from "./support/shop-target";
import { startSplitShop } from "./support/split-shop";

const PRICE = 1000; // every fixture product costs 10.00
const WAIT_MS = 90_000;
const OTHER_KEY = "someone-else-s-key-".padEnd(40, "z");
type Service = "registry" | "wallet" | "storage";
const SERVICES: Service[] = ["registry", "wallet", "storage"];

/** A running shop and the HTTP helpers the tests share. */
function helpers(t: () => ShopTarget) {
  const admin = async (service: Service, path: string, body: unknown) => {
    const r = await call(t().urls[service], "POST", path, body, adminHeaders);
    expect(r.status).toBe(201);
  };
  const ledgerFor = async (userId: number, orderId: string) =>
    ((await getJson(t().urls.wallet, `/wallets/${userId}`)).ledger as { order_id: string | null; kind: string }[])
      .filter((e) => e.order_id === orderId)
      .map((e) => e.kind)
      .sort();
  const consumed = async (service: Service) => {
    const text = await (await fetch(`${t().urls[service]}/metrics`)).text();
    const read = (outcome: string) =>
      Number(text.match(new RegExp(`shop_messages_consumed_total\\{outcome="${outcome}"\\} (\\d+)`))?.[1] ?? 0);
    return { processed: read("processed"), duplicates: read("duplicates"), ignored: read("ignored"), dead: read("dead") };
  };
  const deadLetters = async (service: Service) => {
    const out: { id: number; state: string; topic: string; key: string; error: string; redrives: number }[] = [];
    let cursor: string | null = null;
    for (;;) {
      const q = new URLSearchParams({ state: "all", limit: "100" });
      if (cursor) q.set("cursor", cursor);
      const r = await call(t().urls[service], "GET", `/admin/dead-letters?${q}`, undefined, adminHeaders);
      expect(r.status).toBe(200);
      out.push(...r.body.dead_letters);
      cursor = r.body.next_cursor;
      if (cursor === null) return out;
    }
  };
  const redrive = (service: Service, id: number) =>
    call(t().urls[service], "POST", `/admin/dead-letters/${id}/redrive`, undefined, adminHeaders);
  const settled = (id: string) =>
    eventually(
      async () => {
        const o = await getJson(t().urls.registry, `/orders/${id}`);
        if (o.status === "pending" || (o.status === "rejected" && o.compensation !== "done")) throw new Error(`order ${id}: ${o.status}`);
        return o as { id: string; status: string; timeline: unknown[] };
      },
      WAIT_MS,
      100,
    );
  const order = async (userId: number, productId: number, quantity: number) => {
    const r = await call(t().urls.registry, "POST", "/orders", { user_id: userId, items: [{ product_id: productId, quantity }] });
    expect(r.status).toBe(201);
    return r.body as { id: string };
  };
  return { admin, ledgerFor, consumed, deadLetters, redrive, settled, order };
}

/** Forgeries on every topic against the shop `start` makes. */
function describeForgeries(name: string, start: () => Promise<ShopTarget>, startMs: number) {
  describe(`records without a valid signature (${name})`, () => {
    let t: ShopTarget;
    beforeAll(async () => {
      t = await start();
    }, startMs);
    afterAll(async () => {
      await t?.stop();
    }, 60_000);
    const h = helpers(() => t);

    test("unsigned, garbled, signed with another key or for another topic or key: dead-lettered as bad signature by every reader, nothing changes, redrive 422", async () => {
      const [user, product] = [7_100_001, 71];
      await h.admin("wallet", `/wallets/${user}/deposits`, { amount_cents: 10 * PRICE });
      await h.admin("storage", `/stock/${product}/receipts`, { quantity: 5 });
      const completed = await h.order(user, product, 2);
      expect((await h.settled(completed.id)).status).toBe("completed");
      const facts = async () => ({
        balance: (await getJson(t.urls.wallet, `/wallets/${user}`)).balance_cents,
        stock: await getJson(t.urls.storage, `/stock/${product}`),
        order: await getJson(t.urls.registry, `/orders/${completed.id}`),
      });
      const before = {
        facts: await facts(),
        consumed: Object.fromEntries(await Promise.all(SERVICES.map(async (s) => [s, await h.consumed(s)]))),
      };

      // On each topic a message that would act if it were believed: a paid, reserved order registry never made;
      // a timeout of the completed order (a refund and a release); a step of an order registry never made (an answer).
      const makers: { topic: string; readers: Service[]; make: () => Message }[] = [
        {
          topic: t.topics.new_orders,
          readers: ["wallet", "storage"],
          make: () =>
            createMessage("OrderCreated", {
              order_id: crypto.randomUUID(),
              user_id: user,
              items: [{ product_id: product, quantity: 1, unit_price_cents: PRICE }],
              total_cents: PRICE,
            }),
        },
        {
          topic: t.topics.rejected_orders,
          readers: ["registry", "wallet", "storage"],
          make: () => createMessage("OrderRejected", { order_id: completed.id, service: "registry", reason: "timeout", message: "forged" }),
        },
        {
          topic: t.topics.success,
          readers: ["registry"],
          make: () => createMessage("StepSucceeded", { order_id: crypto.randomUUID(), service: "storage" }),
        },
      ];
      const otherTopic = (topic: string) => (topic === t.topics.success ? t.topics.new_orders : t.topics.success);
      const variants: Record<string, (topic: string, key: string, value: string) => Record<string, string>> = {
        unsigned: () => ({}),
        empty: () => ({ [SIGNATURE_HEADER]: "" }),
        garbled: (topic, key, value) => ({ [SIGNATURE_HEADER]: signRecord(TEST_BUS_SIGNING_KEY, { topic, key, value }).slice(1) }),
        other_key: (topic, key, value) => ({ [SIGNATURE_HEADER]: signRecord(OTHER_KEY, { topic, key, value }) }),
        // The shop's key, but made for another place: a signed record replayed onto another topic or under another key.
        other_topic: (topic, key, value) => ({
          [SIGNATURE_HEADER]: signRecord(TEST_BUS_SIGNING_KEY, { topic: otherTopic(topic), key, value }),
        }),
        other_key_field: (topic, _key, value) => ({
          [SIGNATURE_HEADER]: signRecord(TEST_BUS_SIGNING_KEY, { topic, key: crypto.randomUUID(), value }),
        }),
        other_value: (topic, key, value) => ({ [SIGNATURE_HEADER]: signRecord(TEST_BUS_SIGNING_KEY, { topic, key, value: `${value} ` }) }),
      };
      const expected: Record<Service, string[]> = { registry: [], wallet: [], storage: [] };
      for (const m of makers) {
        for (const [variant, headers] of Object.entries(variants)) {
          const message = m.make();
          const [key, value] = [message.order_id, JSON.stringify(message)];
          await t.publishUnsigned(m.topic, key, value, headers(m.topic, key, value));
          for (const s of m.readers) expected[s].push(`${m.topic} ${key} ${BAD_SIGNATURE} (${variant})`);
        }
      }
      const isForged = (d: { key: string }) =>
        d.key === completed.id || expected.registry.concat(expected.wallet, expected.storage).some((e) => e.includes(` ${d.key} `));
      const lettersOf = async (s: Service) => (await h.deadLetters(s)).filter(isForged);
      await eventually(
        async () => {
          for (const s of SERVICES) expect((await lettersOf(s)).length).toBe(expected[s].length);
        },
        WAIT_MS,
        200,
      );
      for (const s of SERVICES) {
        const letters = await lettersOf(s);
        const strip = (e: string) => e.replace(/ \(\w+\)$/, "");
        expect(letters.map((d) => `${d.topic} ${d.key} ${d.error}`).sort()).toEqual(expected[s].map(strip).sort());
      }

      // Nothing was applied: no reader processed anything, no message was answered, nothing moved.
      const afterForgeries = Object.fromEntries(await Promise.all(SERVICES.map(async (s) => [s, await h.consumed(s)])));
      for (const s of SERVICES) {
        expect(afterForgeries[s].processed).toBe(before.consumed[s].processed);
        expect(afterForgeries[s].duplicates).toBe(before.consumed[s].duplicates);
        expect(afterForgeries[s].dead - before.consumed[s].dead).toBe(expected[s].length);
      }
      expect(await facts()).toEqual(before.facts);

      // A redrive cannot make them valid: 422 bad_signature, the attempt counted, nothing else.
      for (const s of SERVICES) {
        for (const d of await lettersOf(s)) {
          const r = await h.redrive(s, d.id);
          expect(r.status).toBe(422);
          expect(r.body.error.code).toBe("bad_signature");
        }
        for (const d of await lettersOf(s)) expect(d).toMatchObject({ state: "dead", redrives: 1, error: `redrive: ${BAD_SIGNATURE}` });
      }
      const afterRedrives = Object.fromEntries(await Promise.all(SERVICES.map(async (s) => [s, await h.consumed(s)])));
      for (const s of SERVICES) expect(afterRedrives[s].processed).toBe(before.consumed[s].processed);
      expect(await facts()).toEqual(before.facts);
      for (const m of makers) {
        if (m.topic === t.topics.new_orders) {
          for (const e of expected.wallet.filter((x) => x.startsWith(`${m.topic} `)))
            expect(await h.ledgerFor(user, e.split(" ")[1] as string)).toEqual([]);
        }
      }

      // The shop goes on: a real order (its records signed by the relay) completes.
      const next = await h.order(user, product, 1);
      expect((await h.settled(next.id)).status).toBe("completed");
    }, 240_000);
  });
}

describeForgeries("one process, memory bus, PGlite", () => startInProcess(), 120_000);
describeForgeries("three processes, Kafka, PostgreSQL", () => startSplitShop(), 180_000);

describe("key rotation (one process, PGlite on disk)", () => {
  const OLD = "the-old-bus-signing-key-".padEnd(40, "o");
  const NEW = "the-new-bus-signing-key-".padEnd(40, "n");
  let dir: string;
  let t: (ShopTarget & { shop: unknown }) | null = null;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "shop-signing-"));
  });
  afterAll(async () => {
    await t?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);
  const h = helpers(() => t as ShopTarget);
  const created = (user: number, product: number) =>
    createMessage("OrderCreated", {
      order_id: crypto.randomUUID(),
      user_id: user,
      items: [{ product_id: product, quantity: 1, unit_price_cents: PRICE }],
      total_cents: PRICE,
    });
  /** Publishes `m` on new_orders signed with `key`. */
  const sendSigned = (m: Message, key: string) => {
    const target = t as ShopTarget;
    const [topic, value] = [target.topics.new_orders, JSON.stringify(m)];
    return target.publishUnsigned(topic, m.order_id, value, { [SIGNATURE_HEADER]: signRecord(key, { topic, key: m.order_id, value }) });
  };

  test("a record signed with the old key: refused with only the new key, applied while BUS_SIGNING_KEY_PREVIOUS names it; the refused letter is redriven then", async () => {
    const [user, product] = [7_200_001, 72];
    // Only the new key: what the old key signed is dead.
    t = await startInProcess({ DATA_DIR: dir, BUS_SIGNING_KEY: NEW });
    await h.admin("wallet", `/wallets/${user}/deposits`, { amount_cents: 10 * PRICE });
    await h.admin("storage", `/stock/${product}/receipts`, { quantity: 5 });
    const early = created(user, product);
    await sendSigned(early, OLD);
    const letter = await eventually(
      async () => (await h.deadLetters("wallet")).find((d) => d.key === early.order_id) ?? false,
      WAIT_MS,
      100,
    );
    expect(letter.error).toBe(BAD_SIGNATURE);
    expect(await h.ledgerFor(user, early.order_id)).toEqual([]);
    await t.stop();
    t = null;

    // The new key signs, the old one still verifies: a record in flight from before the change is applied.
    t = await startInProcess({ DATA_DIR: dir, BUS_SIGNING_KEY: NEW, BUS_SIGNING_KEY_PREVIOUS: OLD });
    const late = created(user, product);
    await sendSigned(late, OLD);
    // Wallet debits it; registry, which never made the order, answers unknown_order and wallet refunds.
    await eventually(async () => expect(await h.ledgerFor(user, late.order_id)).toEqual(["debit", "refund"]), WAIT_MS, 100);
    // A key neither of them is refused.
    const foreign = created(user, product);
    await sendSigned(foreign, OTHER_KEY);
    await eventually(
      async () => expect((await h.deadLetters("wallet")).find((d) => d.key === foreign.order_id)?.error).toBe(BAD_SIGNATURE),
      WAIT_MS,
      100,
    );
    expect(await h.ledgerFor(user, foreign.order_id)).toEqual([]);
    // The letter refused before the change now verifies: its redrive applies it, once.
    const r = await h.redrive("wallet", letter.id);
    expect(r.status).toBe(200);
    expect(r.body.outcome).toBe("applied");
    await eventually(async () => expect(await h.ledgerFor(user, early.order_id)).toEqual(["debit", "refund"]), WAIT_MS, 100);
    // The relay signs with the new key: a real order completes.
    const placed = await h.order(user, product, 1);
    expect((await h.settled(placed.id)).status).toBe("completed");
    expect(await h.ledgerFor(user, placed.id)).toEqual(["debit"]);
  }, 180_000);
});
