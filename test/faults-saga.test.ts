/**
 * Saga faults in the split deployment (three processes over Kafka, PostgreSQL), each ending with
 * the audit (test/support/audit.ts):
 *
 * - a participant (storage) down longer than the saga deadline: registry rejects with `timeout`,
 *   wallet refunds, the sagas are listed as stuck until storage is back, and what storage does
 *   when it returns is undone exactly once;
 * - stray and replayed records of a legitimate producer (signed with the shop's BUS_SIGNING_KEY) on
 *   every topic: unknown orders, junk of every kind, the same message twice, the same order under
 *   a new message id, a wrong service name. Each is dead-lettered or compensated, never a lasting
 *   effect, and no answer loops;
 * - an OrderRejected forged (unsigned, or signed with another key) for a completed order: every
 *   reader dead-letters it as "bad signature"; nothing changes;
 * - registry's decision, a participant's rejection and a success forged with kcat for a pending
 *   order (unsigned, or signed with another key): the same, and the order completes for real.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { BAD_SIGNATURE, SIGNATURE_HEADER, signRecord } from "../src/bus/signing";
import { createMessage, type Message, parseMessage } from "../src/contracts";
import { auditShop } from "./support/audit";
import { eventually } from "./support/eventually";
import { adminHeaders, call, getJson } from "./support/http";
import { TEST_BUS_SIGNING_KEY } from "./support/shop-target";
import { restartService, type SplitService, type SplitShop, startService, startSplitShop } from "./support/split-shop";
import { auditUntilClean, newBooks, openAccounts, printTimelines, startStorm, waitAllFinal } from "./support/storm";

const PRICE = 1000; // every fixture product costs 10.00
/** Test 3's deadline: storage stays down much longer than this. */
const SHORT_DEADLINE_SECONDS = "2";
/** The forgery test's deadline: long enough that a busy machine never times out a real order. */
const LONG_DEADLINE_SECONDS = "120";
/** Generous bounds: CI is a busy two-core machine. */
const FINAL_TIMEOUT_MS = 90_000;
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

let shop: SplitShop;

/** What the closing note reports. */
const figures = {
  orders: 0,
  completed: 0,
  rejected: {} as Record<string, number>,
  forged: 0,
  deadLetters: {} as Record<string, number>,
  /** Audit violations per test. */
  violations: {} as Record<string, number>,
};

beforeAll(async () => {
  shop = await startSplitShop({
    REGISTRY_SAGA_DEADLINE_SECONDS: SHORT_DEADLINE_SECONDS,
    // A rejected order whose compensations are not all confirmed after this is listed as stuck.
    REGISTRY_COMPENSATION_DEADLINE_SECONDS: "1",
  });
}, 180_000);

afterAll(async () => {
  console.log(
    `faults-saga figures: orders ${figures.orders}, completed ${figures.completed}, rejected ${JSON.stringify(figures.rejected)}, ` +
      `records forged ${figures.forged}, dead letters ${JSON.stringify(figures.deadLetters)}, violations ${JSON.stringify(figures.violations)}`,
  );
  await shop?.stop();
}, 60_000);

// ---------------------------------------------------------------------------------------------
// Helpers

const deposit = async (userId: number, cents: number) => {
  const r = await call(shop.urls.wallet, "POST", `/wallets/${userId}/deposits`, { amount_cents: cents }, adminHeaders);
  expect(r.status).toBe(201);
};
const receive = async (productId: number, quantity: number) => {
  const r = await call(shop.urls.storage, "POST", `/stock/${productId}/receipts`, { quantity }, adminHeaders);
  expect(r.status).toBe(201);
};
const balance = async (userId: number) => (await getJson(shop.urls.wallet, `/wallets/${userId}`)).balance_cents as number;
const stockOf = async (productId: number) => {
  const s = await getJson(shop.urls.storage, `/stock/${productId}`);
  return { available: s.available as number, reserved: s.reserved as number };
};
const ledgerFor = async (userId: number, orderId: string) =>
  ((await getJson(shop.urls.wallet, `/wallets/${userId}`)).ledger as { order_id: string | null; kind: string; amount_cents: number }[])
    .filter((e) => e.order_id === orderId)
    .map((e) => `${e.kind} ${Math.abs(e.amount_cents)}`)
    .sort();
const order = async (userId: number, items: { product_id: number; quantity: number }[]) => {
  const r = await call(shop.urls.registry, "POST", "/orders", { user_id: userId, items });
  expect(r.status).toBe(201);
  return r.body as { id: string; total_cents: number; status: string };
};
type Timeline = { service: string; step: string; detail: string | null; at: string }[];
type OrderBody = { id: string; status: string; reason: string | null; compensation: string | null; timeline: Timeline };
const getOrder = (id: string) => getJson<OrderBody>(shop.urls.registry, `/orders/${id}`);
const steps = (o: OrderBody) => o.timeline.map((e) => `${e.service}:${e.step}`);
/** Waits until the order is final: completed, or rejected with both compensations confirmed. */
const settled = (id: string) =>
  eventually(
    async () => {
      const o = await getOrder(id);
      if (o.status === "pending" || (o.status === "rejected" && o.compensation !== "done")) {
        throw new Error(`order ${id}: ${o.status}, compensation ${o.compensation}: ${steps(o).join(" ")}`);
      }
      return o;
    },
    FINAL_TIMEOUT_MS,
    100,
  );

/**
 * Puts a record on a topic as a stray producer holding the signing key would (a module restored from
 * an old backup, a replaying tool); counted as forged.
 */
const forge = async (topic: string, key: string, value: string) => {
  figures.forged += 1;
  await shop.publish(topic, key, value);
};
const topicOf = (m: Message) =>
  m.type === "OrderCreated" ? shop.topics.new_orders : m.type === "OrderRejected" ? shop.topics.rejected_orders : shop.topics.success;
const forgeMessage = (m: Message, key = m.order_id) => forge(topicOf(m), key, JSON.stringify(m));

/** A record as kcat reads it. */
interface TopicRecord {
  topic: string;
  key: string | null;
  payload: string | null;
}

/** Reads a topic from the beginning with kcat. */
async function readTopic(topic: string): Promise<TopicRecord[]> {
  const proc = Bun.spawn(["kcat", "-b", shop.brokers, "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q"], {
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`kcat -C ${topic}: exit ${code}: ${err}`);
  return out
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as TopicRecord);
}

/** Every record on the three topics, parsed where it parses. */
async function readAll(): Promise<{ topic: string; key: string | null; value: string | null; message: Message | null }[]> {
  const all = await Promise.all(Object.values(shop.topics).map(readTopic));
  return all.flat().map((r) => {
    const parsed = r.payload === null ? null : parseMessage(r.payload);
    return { topic: r.topic, key: r.key, value: r.payload, message: parsed?.ok ? parsed.message : null };
  });
}

/** Produces a record with a null value (a tombstone) through kcat: kafkajs's producer here only sends strings. */
async function forgeTombstone(topic: string, key: string) {
  figures.forged += 1;
  // Signed like forge()'s records: a consumer reads a null value as "".
  const signature = `${SIGNATURE_HEADER}=${signRecord(TEST_BUS_SIGNING_KEY, { topic, key, value: "" })}`;
  const proc = Bun.spawn(["kcat", "-b", shop.brokers, "-P", "-t", topic, "-K", "\t", "-Z", "-H", signature], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  proc.stdin.write(`${key}\t\n`);
  await proc.stdin.end();
  const [err, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`kcat -P ${topic}: exit ${code}: ${err}`);
}

/** Produces one record through kcat with the given headers (`name=value`), as any client of the broker can: counted as forged. */
async function kcatProduce(topic: string, key: string, value: string, headers: string[]) {
  figures.forged += 1;
  const proc = Bun.spawn(["kcat", "-b", shop.brokers, "-P", "-t", topic, "-k", key, ...headers.flatMap((h) => ["-H", h])], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  proc.stdin.write(`${value}\n`);
  await proc.stdin.end();
  const [err, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`kcat -P ${topic}: exit ${code}: ${err}`);
}

let longDeadline = false;
/** A long deadline from the first caller on (registry restarted once): a busy machine must not time out the real orders. */
async function useLongDeadline() {
  if (longDeadline) return;
  await restartService(shop, "registry", { env: { REGISTRY_SAGA_DEADLINE_SECONDS: LONG_DEADLINE_SECONDS } });
  longDeadline = true;
}

/** A service's consumer counters from /metrics. */
async function consumed(base: string) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const read = (outcome: string) =>
    Number(text.match(new RegExp(`shop_messages_consumed_total\\{outcome="${outcome}"\\} (\\d+)`))?.[1] ?? 0);
  const c = { processed: read("processed"), duplicates: read("duplicates"), ignored: read("ignored"), dead: read("dead") };
  return { ...c, total: c.processed + c.duplicates + c.ignored + c.dead };
}
const SERVICES: SplitService[] = ["registry", "wallet", "storage"];
const consumedAll = async () =>
  Object.fromEntries(await Promise.all(SERVICES.map(async (s) => [s, await consumed(shop.urls[s])] as const))) as Record<
    SplitService,
    Awaited<ReturnType<typeof consumed>>
  >;
/** Who reads each topic. */
const readers = (topic: string): SplitService[] =>
  topic === shop.topics.new_orders
    ? ["wallet", "storage"]
    : topic === shop.topics.success
      ? ["registry"]
      : ["registry", "wallet", "storage"];

/** Every dead letter of a service (all states), following the cursor. */
async function deadLetters(name: SplitService) {
  const out: { id: number; topic: string; key: string; value: string; error: string }[] = [];
  let cursor: string | null = null;
  for (;;) {
    const q = new URLSearchParams({ state: "all", limit: "100" });
    if (cursor) q.set("cursor", cursor);
    const r = await call(shop.urls[name], "GET", `/admin/dead-letters?${q}`, undefined, adminHeaders);
    if (r.status !== 200) throw new Error(`${name} GET /admin/dead-letters: ${r.status} ${JSON.stringify(r.body)}`);
    out.push(...r.body.dead_letters);
    cursor = r.body.next_cursor;
    if (cursor === null) return out;
  }
}

/** Registry's overdue sagas. */
async function stuck() {
  const r = await call(shop.urls.registry, "GET", "/admin/sagas/stuck?limit=1000", undefined, adminHeaders);
  if (r.status !== 200) throw new Error(`GET /admin/sagas/stuck: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.sagas as { order_id: string; status: string; reason: string | null; overdue: string; waiting_for: string[] }[];
}

/** Adds an audit's counts to the closing figures. */
function count(test: string, audit: Awaited<ReturnType<typeof auditShop>>) {
  figures.orders += audit.orders.length;
  figures.completed += audit.counts.completed;
  for (const [reason, n] of Object.entries(audit.counts.reasons)) figures.rejected[reason] = (figures.rejected[reason] ?? 0) + n;
  figures.violations[test] = (figures.violations[test] ?? 0) + audit.violations.length;
}

/** Prints the logs of the services that mention any of `ids`, to go with a failure. */
function logsAbout(ids: string[], max = 40) {
  for (const name of SERVICES) {
    const lines = shop.processes[name].logs.filter((l) => ids.some((id) => l.includes(id)) || /"level":"(warn|error)"/.test(l));
    if (lines.length > 0) console.log(`[${name} logs]\n${lines.slice(-max).join("\n")}`);
  }
}

/** The undoing steps of one participant on a timeline (a rejection by the participant itself counts: it did nothing). */
const undoingBy = (o: OrderBody, service: "wallet" | "storage") =>
  steps(o).filter((s) => [`${service}:refunded`, `${service}:released`, `${service}:nothing_to_undo`, `${service}:rejected`].includes(s));

// ---------------------------------------------------------------------------------------------

describe("faults in the saga (three processes, Kafka, PostgreSQL)", () => {
  test("storage down longer than the saga deadline: orders time out, wallet refunds, the sagas wait for storage; its return is undone exactly once", async () => {
    const books = newBooks();
    const users = Array.from({ length: 8 }, (_, i) => 300_001 + i);
    const products = [1, 2, 3, 4, 5, 6];
    await openAccounts(shop.urls, books, users, products);
    // Two users whose fate is certain: one pays for everything, one can pay for nothing.
    const [rich, poor] = [300_100, 300_101];
    await deposit(rich, 20 * PRICE);
    await deposit(poor, PRICE / 2);
    books.deposits.set(rich, 20 * PRICE);
    books.deposits.set(poor, PRICE / 2);

    await shop.processes.storage.stop("SIGKILL");
    const paid = [
      await order(rich, [{ product_id: 1, quantity: 2 }]),
      await order(rich, [
        { product_id: 2, quantity: 1 },
        { product_id: 6, quantity: 3 },
      ]),
    ];
    const unpaid = await order(poor, [{ product_id: 3, quantity: 1 }]);
    for (const o of [...paid, unpaid]) books.acknowledged.add(o.id);
    const storm = startStorm(shop.urls, books, { users, products, clients: 2, ordersPerUser: 2, label: "storage down" });
    await storm.finished;
    expect(books.stormErrors).toEqual({ count: 0, first: [] });
    const ids = [...books.acknowledged];

    // Registry decides without storage: wallet's rejections, else the deadline.
    const decided = await eventually(
      async () => {
        const os = await Promise.all(ids.map(getOrder));
        const open = os.filter((o) => o.status === "pending");
        if (open.length > 0) throw new Error(`${open.length} orders still pending, e.g. ${open[0]?.id}`);
        return os;
      },
      FINAL_TIMEOUT_MS,
      250,
    );
    expect(decided.every((o) => o.status === "rejected")).toBe(true);
    const byId = new Map(decided.map((o) => [o.id, o]));
    for (const o of paid) expect(byId.get(o.id)?.reason).toBe("timeout");
    expect(byId.get(unpaid.id)?.reason).toBe("insufficient_funds");
    // What wallet debited comes back while storage is still down.
    await eventually(async () => expect(await balance(rich)).toBe(20 * PRICE), FINAL_TIMEOUT_MS);
    for (const o of paid) expect(await ledgerFor(rich, o.id)).toEqual([`debit ${o.total_cents}`, `refund ${o.total_cents}`]);

    // Every one of them waits for storage's compensation, and registry says so.
    await eventually(
      async () => {
        const listed = new Map((await stuck()).map((s) => [s.order_id, s]));
        for (const id of ids) {
          expect(listed.get(id)).toMatchObject({ status: "rejected", overdue: "compensation", waiting_for: ["storage"] });
        }
      },
      FINAL_TIMEOUT_MS,
      250,
    );
    expect(decided.every((o) => o.compensation === "pending")).toBe(true);

    // Storage returns with the same settings: it hears OrderCreated and the rejection, in either order.
    await startService(shop, "storage");
    try {
      await waitAllFinal(shop.urls, books, FINAL_TIMEOUT_MS);
    } catch (err) {
      await printTimelines(shop.urls.registry, ids.slice(0, 5), "storage back");
      logsAbout(ids);
      throw err;
    }
    const listed = new Set((await stuck()).map((s) => s.order_id));
    expect(ids.filter((id) => listed.has(id))).toEqual([]);

    // Each order's timeline shows each participant's undoing exactly once, matching what it did.
    const finals = await Promise.all(ids.map(getOrder));
    const mismatches: string[] = [];
    for (const o of finals) {
      const s = steps(o);
      const wallet = undoingBy(o, "wallet");
      const storage = undoingBy(o, "storage");
      const ok =
        o.status === "rejected" &&
        o.compensation === "done" &&
        wallet.length === 1 &&
        storage.length === 1 &&
        (!s.includes("wallet:paid") || wallet[0] === "wallet:refunded") &&
        (!s.includes("storage:reserved") || storage[0] === "storage:released") &&
        s.filter((x) => x === "registry:rejected").length === (o.reason === "timeout" ? 1 : 0);
      if (!ok) mismatches.push(`${o.id} (${o.status} ${o.reason}, compensation ${o.compensation}): ${s.join(" ")}`);
    }
    expect(mismatches).toEqual([]);
    const reservedThenReleased = finals.filter((o) => steps(o).includes("storage:reserved")).length;
    console.log(
      `storage down: ${ids.length} orders rejected (${finals.filter((o) => o.reason === "timeout").length} timeout), ` +
        `${finals.filter((o) => steps(o).includes("wallet:refunded")).length} refunded by wallet; storage back: ` +
        `${reservedThenReleased} reserved late and released, ${finals.filter((o) => steps(o).includes("storage:nothing_to_undo")).length} nothing to undo`,
    );

    // Stock is back where it was, money is back, the books balance.
    for (const p of products) expect(await stockOf(p)).toEqual({ available: books.receipts.get(p) as number, reserved: 0 });
    for (const u of books.deposits.keys()) expect(await balance(u)).toBe(books.deposits.get(u) as number);
    const audit = await auditUntilClean(shop.urls, books, 30_000);
    count("storage down", audit);
    if (audit.violations.length > 0) await printTimelines(shop.urls.registry, audit.violations, "storage down");
    expect(audit.violations).toEqual([]);
    expect(audit.counts.completed).toBe(0);
  }, 240_000);

  test("forged and replayed records on every topic: dead-lettered or compensated, never a lasting effect; no answer loops", async () => {
    await useLongDeadline();

    const books = newBooks();
    const [buyer, poor, other] = [400_001, 400_002, 400_003];
    const [pa, pb] = [11, 12];
    for (const [u, cents] of [
      [buyer, 100 * PRICE],
      [poor, 1.5 * PRICE],
      [other, 10 * PRICE],
    ] as const) {
      await deposit(u, cents);
      books.deposits.set(u, cents);
    }
    for (const p of [pa, pb]) {
      await receive(p, 50);
      books.receipts.set(p, 50);
    }
    // The forged orders' user and product: funded and stocked, so a forged OrderCreated takes effect.
    const [victim, vp] = [400_900, 19];
    await deposit(victim, 20 * PRICE);
    await receive(vp, 10);
    books.receipts.set(vp, 10);

    // Real orders to replay later: one completed, one rejected (insufficient funds).
    const done = await order(buyer, [{ product_id: pa, quantity: 2 }]);
    const refused = await order(poor, [{ product_id: pb, quantity: 2 }]);
    books.acknowledged.add(done.id).add(refused.id);
    expect((await settled(done.id)).status).toBe("completed");
    expect(await settled(refused.id)).toMatchObject({ status: "rejected", reason: "insufficient_funds" });

    // --- Junk on every topic: dead-lettered by every reader, nothing else happens.
    const junkKeys: { key: string; topic: string; kind: string }[] = [];
    const validFor = (topic: string): Message => {
      const id = crypto.randomUUID();
      if (topic === shop.topics.new_orders) {
        return createMessage("OrderCreated", {
          order_id: id,
          user_id: victim,
          items: [{ product_id: vp, quantity: 1, unit_price_cents: PRICE }],
          total_cents: PRICE,
        });
      }
      if (topic === shop.topics.success) return createMessage("StepSucceeded", { order_id: id, service: "wallet" });
      return createMessage("OrderRejected", { order_id: id, service: "registry", reason: "timeout", message: "forged" });
    };
    /** The payload with one field broken, per type; `filler` is the broken value. */
    const breakPayload = (m: Message, filler: string): unknown =>
      m.type === "OrderCreated"
        ? { ...m.payload, user_id: filler }
        : m.type === "StepSucceeded"
          ? { ...m.payload, service: filler }
          : { ...m.payload, message: filler.padEnd(501, "x") };
    const junk: Record<string, (topic: string) => string | null> = {
      not_json: () => "{{{ not json",
      empty: () => "",
      tombstone: () => null,
      bad_envelope: (t) => JSON.stringify({ ...validFor(t), id: "not-a-uuid", occurred_at: "yesterday" }),
      unknown_type: (t) => JSON.stringify({ ...validFor(t), type: "OrderShipped" }),
      bad_payload: (t) => {
        const m = validFor(t);
        return JSON.stringify({ ...m, payload: breakPayload(m, "nobody") });
      },
      // Two versions ahead: a reader takes its own version and the next one only.
      future_version: (t) => JSON.stringify({ ...validFor(t), version: 3 }),
      order_id_mismatch: (t) => {
        const m = validFor(t);
        return JSON.stringify({ ...m, order_id: crypto.randomUUID() });
      },
      // ~900 KB: a broken payload carrying a huge field.
      huge: (t) => {
        const m = validFor(t);
        return JSON.stringify({ ...m, payload: breakPayload(m, "x".repeat(900_000)) });
      },
    };
    for (const topic of Object.values(shop.topics)) {
      for (const [kind, make] of Object.entries(junk)) {
        const key = `junk-${kind}-${topic}-${crypto.randomUUID().slice(0, 8)}`;
        const value = make(topic);
        if (value === null) await forgeTombstone(topic, key);
        else await forge(topic, key, value);
        junkKeys.push({ key, topic, kind });
      }
    }
    await eventually(
      async () => {
        for (const name of SERVICES) {
          const keys = new Set((await deadLetters(name)).map((d) => d.key));
          const missing = junkKeys.filter((j) => readers(j.topic).includes(name) && !keys.has(j.key));
          if (missing.length > 0) throw new Error(`${name}: not dead-lettered yet: ${missing.map((m) => m.key).join(", ")}`);
        }
      },
      FINAL_TIMEOUT_MS,
      500,
    );
    for (const name of SERVICES) {
      const letters = await deadLetters(name);
      const huge = letters.filter((d) => d.key.startsWith("junk-huge-"));
      expect(huge.length).toBe(2); // every service reads two of the three topics
      for (const d of huge) expect(d.value.length).toBe(100_000); // kept, cut
      const mine = letters.filter((d) => junkKeys.some((j) => j.key === d.key));
      // Dead once per reader: never twice; for what it is, not for its signature (the junk is signed).
      expect(new Set(mine.map((d) => d.key)).size).toBe(mine.length);
      expect(mine.filter((d) => d.error === BAD_SIGNATURE)).toEqual([]);
    }
    expect(await balance(victim)).toBe(20 * PRICE);
    expect(await stockOf(vp)).toEqual({ available: 10, reserved: 0 });

    // --- Orders registry never made: each answered once (unknown_order) and undone; no loop.
    const forgedCreated = crypto.randomUUID();
    await forgeMessage(
      createMessage("OrderCreated", {
        order_id: forgedCreated,
        user_id: victim,
        items: [{ product_id: vp, quantity: 3, unit_price_cents: PRICE }],
        total_cents: 3 * PRICE,
      }),
    );
    // Wallet debits and storage reserves: for a moment, the forgery has an effect.
    await eventually(async () => expect(await ledgerFor(victim, forgedCreated)).toContain(`debit ${3 * PRICE}`), FINAL_TIMEOUT_MS);
    const unknown = {
      step: crypto.randomUUID(),
      hugeStep: crypto.randomUUID(),
      rejectedByWallet: crypto.randomUUID(),
      rejectedByRegistry: crypto.randomUUID(),
      compensated: crypto.randomUUID(),
      registryStep: crypto.randomUUID(),
      misrouted: crypto.randomUUID(),
    };
    await forgeMessage(createMessage("StepSucceeded", { order_id: unknown.step, service: "wallet" }));
    // A valid message of ~900 KB: unknown fields are dropped, the rest is an unknown order's StepSucceeded.
    const huge = createMessage("StepSucceeded", { order_id: unknown.hugeStep, service: "storage" });
    await forge(
      shop.topics.success,
      huge.order_id,
      JSON.stringify({ ...huge, payload: { ...huge.payload, padding: "p".repeat(900_000) } }),
    );
    await forgeMessage(
      createMessage("OrderRejected", {
        order_id: unknown.rejectedByWallet,
        service: "wallet",
        reason: "insufficient_funds",
        message: "forged",
      }),
    );
    await forgeMessage(
      createMessage("OrderRejected", { order_id: unknown.rejectedByRegistry, service: "registry", reason: "timeout", message: "forged" }),
    );
    await forgeMessage(
      createMessage("OrderCompensated", { order_id: unknown.compensated, service: "wallet", action: "refunded", amount: 5 * PRICE }),
    );
    await forgeMessage(createMessage("StepSucceeded", { order_id: unknown.registryStep, service: "registry" }));
    // A known type on a topic where it does not belong: registry has no use for OrderCreated.
    const misrouted = createMessage("OrderCreated", {
      order_id: unknown.misrouted,
      user_id: victim,
      items: [{ product_id: vp, quantity: 1, unit_price_cents: PRICE }],
      total_cents: PRICE,
    });
    await forge(shop.topics.success, misrouted.order_id, JSON.stringify(misrouted));

    /** What was said about one order: `Type[service]` per distinct message (a relay may publish one twice), sorted. */
    const recordsOf = (all: Awaited<ReturnType<typeof readAll>>, id: string) => {
      const byId = new Map(
        all.filter((r) => r.key === id).map((r) => [r.message?.id ?? `unparsed ${r.value}`, r.message ? label(r.message) : "unparsed"]),
      );
      return [...byId.values()].sort();
    };
    const C = "OrderCompensated";
    // Every forged order's whole conversation. Registry answers (OrderRejected[registry], unknown_order) each order a
    // participant acted on that it never made, once; each participant then undoes its part once and says so. In its own
    // name, a compensation, a type it does not read on that topic: nothing to answer.
    const expected: Record<string, string[]> = {
      [forgedCreated]: [
        "OrderCreated",
        "StepSucceeded[wallet]",
        "StepSucceeded[storage]",
        "OrderRejected[registry]",
        `${C}[wallet]`,
        `${C}[storage]`,
      ],
      [unknown.step]: ["StepSucceeded[wallet]", "OrderRejected[registry]", `${C}[wallet]`, `${C}[storage]`],
      [unknown.hugeStep]: ["StepSucceeded[storage]", "OrderRejected[registry]", `${C}[wallet]`, `${C}[storage]`],
      // Storage undoes on wallet's (forged) word, wallet on registry's answer.
      [unknown.rejectedByWallet]: ["OrderRejected[wallet]", "OrderRejected[registry]", `${C}[wallet]`, `${C}[storage]`],
      [unknown.rejectedByRegistry]: ["OrderRejected[registry]", `${C}[wallet]`, `${C}[storage]`],
      [unknown.compensated]: [`${C}[wallet]`],
      [unknown.registryStep]: ["StepSucceeded[registry]"],
      [unknown.misrouted]: ["OrderCreated"],
    };
    for (const list of Object.values(expected)) list.sort();
    const ids = Object.keys(expected);
    const conversations = (all: Awaited<ReturnType<typeof readAll>>) => Object.fromEntries(ids.map((id) => [id, recordsOf(all, id)]));
    // Effects undone: money and stock back.
    await eventually(async () => {
      expect(await balance(victim)).toBe(20 * PRICE);
      expect(await stockOf(vp)).toEqual({ available: 10, reserved: 0 });
    }, FINAL_TIMEOUT_MS);
    await eventually(async () => expect(conversations(await readAll())).toEqual(expected), FINAL_TIMEOUT_MS, 500);
    // A further grace later, nothing more was said about any of them: no loop.
    const second = await sentinel();
    expect(conversations(second)).toEqual(expected);
    const answered = second.flatMap((r) =>
      r.message?.type === "OrderRejected" && r.message.payload.reason === "unknown_order" && ids.includes(r.message.order_id)
        ? [r.message.order_id]
        : [],
    );
    expect(answered.sort()).toEqual([forgedCreated, unknown.step, unknown.hugeStep, unknown.rejectedByWallet].sort());
    const compensations = second
      .filter((r) => r.key === forgedCreated && r.message?.type === "OrderCompensated")
      .map((r) => r.message?.payload);
    expect(compensations).toEqual(
      expect.arrayContaining([
        { order_id: forgedCreated, service: "wallet", action: "refunded", amount: 3 * PRICE },
        { order_id: forgedCreated, service: "storage", action: "released", amount: 3 },
      ]),
    );
    expect(await ledgerFor(victim, forgedCreated)).toEqual([`debit ${3 * PRICE}`, `refund ${3 * PRICE}`]);
    // Registry never lists a forged order.
    for (const id of ids) expect((await call(shop.urls.registry, "GET", `/orders/${id}`)).status).toBe(404);

    // --- Replays of real records, verbatim (same envelope id) and under a fresh id, on every topic.
    await deposit(poor, 10 * PRICE); // now the refused order could be paid: a replay must still not debit it
    books.deposits.set(poor, (books.deposits.get(poor) ?? 0) + 10 * PRICE);
    const real = (await readAll()).filter((r) => r.message && (r.key === done.id || r.key === refused.id));
    expect(real.length).toBeGreaterThanOrEqual(6);
    const before = {
      balances: [await balance(buyer), await balance(poor)],
      stock: [await stockOf(pa), await stockOf(pb)],
      ledgers: [await ledgerFor(buyer, done.id), await ledgerFor(poor, refused.id)],
      orders: [await getOrder(done.id), await getOrder(refused.id)],
      consumed: await consumedAll(),
    };
    // Copies each reader must see: all of them, and the verbatim ones (its inbox knows those: duplicates).
    const deliveries: Record<SplitService, { all: number; verbatim: number }> = {
      registry: { all: 0, verbatim: 0 },
      wallet: { all: 0, verbatim: 0 },
      storage: { all: 0, verbatim: 0 },
    };
    const replay = async (topic: string, m: Message, verbatim: boolean) => {
      await forge(topic, m.order_id, JSON.stringify(m));
      for (const s of readers(topic)) {
        deliveries[s].all += 1;
        if (verbatim) deliveries[s].verbatim += 1;
      }
    };
    for (const r of real) {
      const m = r.message as Message;
      await replay(r.topic, m, true); // the same envelope id: the inbox has it
      await replay(r.topic, { ...m, id: crypto.randomUUID() }, false); // the same order, a new message id
    }
    // The completed order created again under a new id, for another user and a lower total.
    const created = real.find((r) => r.key === done.id && r.message?.type === "OrderCreated")?.message;
    if (created?.type !== "OrderCreated") throw new Error("no OrderCreated on new_orders for the completed order");
    await replay(
      shop.topics.new_orders,
      { ...created, id: crypto.randomUUID(), payload: { ...created.payload, user_id: other, total_cents: 1 } },
      false,
    );
    // A StepSucceeded for a real order from a service that takes no step.
    await replay(shop.topics.success, createMessage("StepSucceeded", { order_id: done.id, service: "registry" }), false);
    // Last on each topic and order (one partition): a verbatim copy. Once every reader counted all verbatim copies
    // as duplicates, it has consumed everything sent before them.
    const tails = new Map(real.map((r) => [`${r.topic} ${r.key}`, r]));
    for (const r of tails.values()) await replay(r.topic, r.message as Message, true);
    await eventually(
      async () => {
        const now = await consumedAll();
        for (const s of SERVICES) {
          expect(now[s].duplicates - before.consumed[s].duplicates).toBeGreaterThanOrEqual(deliveries[s].verbatim);
          expect(now[s].total - before.consumed[s].total).toBeGreaterThanOrEqual(deliveries[s].all);
        }
      },
      FINAL_TIMEOUT_MS,
      250,
    );
    expect([await balance(buyer), await balance(poor)]).toEqual(before.balances);
    expect([await stockOf(pa), await stockOf(pb)]).toEqual(before.stock);
    expect([await ledgerFor(buyer, done.id), await ledgerFor(poor, refused.id)]).toEqual(before.ledgers);
    expect(await ledgerFor(other, done.id)).toEqual([]);
    const afterDone = await getOrder(done.id);
    const afterRefused = await getOrder(refused.id);
    expect(afterDone).toMatchObject({ status: "completed", reason: null, compensation: null });
    expect(afterRefused).toMatchObject({ status: "rejected", reason: "insufficient_funds", compensation: "done" });
    expect(steps(afterDone)).toEqual(steps(before.orders[0] as OrderBody));
    // A rejection replayed under a new id is a new message to registry, but it has heard that participant already: nothing new on the timeline.
    expect(steps(afterRefused)).toEqual(steps(before.orders[1] as OrderBody));

    // --- A StepSucceeded in registry's name for a real order still pending: ignored; the order completes on its own.
    const pending = await order(buyer, [{ product_id: pa, quantity: 1 }]);
    books.acknowledged.add(pending.id);
    await forgeMessage(createMessage("StepSucceeded", { order_id: pending.id, service: "registry" }));
    const completed = await settled(pending.id);
    expect(completed.status).toBe("completed");
    expect([...steps(completed)].sort()).toEqual(["registry:completed", "registry:created", "storage:reserved", "wallet:paid"]);

    // --- The following real orders complete.
    const following = await Promise.all([
      order(buyer, [
        { product_id: pa, quantity: 1 },
        { product_id: pb, quantity: 1 },
      ]),
      order(other, [{ product_id: pb, quantity: 3 }]),
      order(poor, [{ product_id: pa, quantity: 1 }]),
    ]);
    for (const o of following) books.acknowledged.add(o.id);
    for (const o of following) expect((await settled(o.id)).status).toBe("completed");

    // --- The books: nothing forged or replayed left a trace.
    await waitAllFinal(shop.urls, books, FINAL_TIMEOUT_MS);
    const audit = await auditUntilClean(shop.urls, books, 30_000);
    count("forgeries", audit);
    if (audit.violations.length > 0) {
      await printTimelines(shop.urls.registry, audit.violations, "forgeries");
      logsAbout(audit.violations.flatMap((v) => v.match(UUID) ?? []));
    }
    expect(audit.violations).toEqual([]);
    expect(await balance(victim)).toBe(20 * PRICE);
    for (const name of SERVICES) figures.deadLetters[name] = (await deadLetters(name)).length;
  }, 240_000);

  // No genuine OrderRejected exists for a completed order (registry completes only once both steps succeeded, and
  // its sweeper rejects only pending orders), so one on the bus is forged or corrupt and must change nothing. A forger
  // does not hold BUS_SIGNING_KEY: its records, unsigned or signed with another key, are dead-lettered by every reader.
  test("an OrderRejected forged for a completed order, in registry's name or wallet's (unsigned, or signed with another key): dead-lettered, not reopened, not refunded, not released", async () => {
    const books = newBooks();
    const cases = [
      { user: 500_001, product: 21, as: { service: "registry", reason: "timeout" } },
      { user: 500_002, product: 22, as: { service: "wallet", reason: "insufficient_funds" } },
    ] as const;
    const placed: string[] = [];
    for (const c of cases) {
      await deposit(c.user, 10 * PRICE);
      await receive(c.product, 5);
      books.deposits.set(c.user, 10 * PRICE);
      books.receipts.set(c.product, 5);
      const o = await order(c.user, [{ product_id: c.product, quantity: 2 }]);
      books.acknowledged.add(o.id);
      placed.push(o.id);
      expect((await settled(o.id)).status).toBe("completed");
    }
    const before = await consumedAll();
    const wrongKey = "not-the-shop-key-".padEnd(40, "x");
    const forgeries = [
      { signed: "unsigned", headers: () => ({}) },
      {
        signed: "with another key",
        headers: (topic: string, key: string, value: string) => ({ [SIGNATURE_HEADER]: signRecord(wrongKey, { topic, key, value }) }),
      },
    ];
    for (const [i, c] of cases.entries()) {
      for (const f of forgeries) {
        const m = createMessage("OrderRejected", { order_id: placed[i] as string, ...c.as, message: `forged, ${f.signed}` });
        const [topic, key, value] = [shop.topics.rejected_orders, m.order_id, JSON.stringify(m)];
        figures.forged += 1;
        await shop.publishUnsigned(topic, key, value, f.headers(topic, key, value));
      }
    }
    await eventually(
      async () => {
        const now = await consumedAll();
        for (const s of SERVICES) expect(now[s].total - before[s].total).toBeGreaterThanOrEqual(cases.length * forgeries.length);
      },
      FINAL_TIMEOUT_MS,
      250,
    );
    // Every reader of rejected_orders set each forgery aside for its signature, and applied none.
    for (const s of SERVICES) {
      const letters = (await deadLetters(s)).filter((d) => placed.includes(d.key));
      expect(letters.map((d) => `${d.key} ${d.error}`).sort()).toEqual(
        placed.flatMap((id) => forgeries.map(() => `${id} ${BAD_SIGNATURE}`)).sort(),
      );
      const now = await consumed(shop.urls[s]);
      expect(now.dead - before[s].dead).toBeGreaterThanOrEqual(cases.length * forgeries.length);
    }
    // Whatever the participants said about it (OrderCompensated) has reached registry a grace later.
    await sentinel();
    const found: string[] = [];
    for (const [i, c] of cases.entries()) {
      const id = placed[i] as string;
      const o = await getOrder(id);
      const [bal, stock, ledger] = [await balance(c.user), await stockOf(c.product), await ledgerFor(c.user, id)];
      const timeline = o.timeline.map((e) => `${e.service}:${e.step}${e.detail ? ` (${e.detail})` : ""}`).join(" → ");
      console.log(
        `OrderRejected forged in ${c.as.service}'s name for completed order ${id}: status ${o.status}, compensation ${o.compensation}; ` +
          `balance ${bal} (expected ${8 * PRICE}), stock ${JSON.stringify(stock)} (expected 3 available, 2 reserved), ledger ${JSON.stringify(ledger)}; ` +
          `timeline ${timeline}`,
      );
      if (o.status !== "completed") found.push(`${c.as.service}: order ${id} is ${o.status}`);
      if (bal !== 8 * PRICE || ledger.join() !== `debit ${2 * PRICE}`)
        found.push(`${c.as.service}: completed order ${id} refunded (${ledger.join(", ")})`);
      if (stock.available !== 3 || stock.reserved !== 2)
        found.push(`${c.as.service}: completed order ${id}'s units released (${JSON.stringify(stock)})`);
    }
    const audit = await auditShop({
      urls: shop.urls,
      deposits: books.deposits,
      receipts: books.receipts,
      acknowledged: books.acknowledged,
    });
    count("rejection of a completed order", audit);
    if (audit.violations.length > 0) console.log(`audit after the forged rejections:\n${audit.violations.join("\n")}`);
    expect(found).toEqual([]);
    expect(audit.violations).toEqual([]);
  }, 120_000);

  // The finding of issue 16: records written with kcat, in a module's name, for an order still pending (storage is
  // down, so it waits for storage's step): registry's decision would make wallet refund and storage release while
  // registry completes the order; a participant's rejection would reject it; a success would complete it without
  // storage. Every reader of each topic dead-letters each forgery, unsigned or signed with another key; the order
  // then completes for real once storage is back, and the audit is clean.
  test("records forged with kcat for a pending order (registry's decision, a participant's rejection, a success), unsigned or signed with another key: dead-lettered by every reader, nothing changes, the audit is clean", async () => {
    await useLongDeadline();
    const books = newBooks();
    const [user, product] = [600_001, 31];
    await deposit(user, 10 * PRICE);
    await receive(product, 5);
    books.deposits.set(user, 10 * PRICE);
    books.receipts.set(product, 5);
    await shop.processes.storage.stop("SIGTERM");
    const o = await order(user, [{ product_id: product, quantity: 2 }]);
    books.acknowledged.add(o.id);
    // Wallet's part is done; the order waits for storage.
    await eventually(async () => expect(steps(await getOrder(o.id))).toContain("wallet:paid"), FINAL_TIMEOUT_MS, 100);
    const forged = [
      createMessage("OrderRejected", { order_id: o.id, service: "registry", reason: "timeout", message: "forged: registry's decision" }),
      createMessage("OrderRejected", {
        order_id: o.id,
        service: "storage",
        reason: "out_of_stock",
        message: "forged: a participant's rejection",
      }),
      createMessage("StepSucceeded", { order_id: o.id, service: "storage" }),
    ];
    const wrongKey = "a-forger-s-own-key-".padEnd(40, "f");
    // Storage is down: only the others' counters now.
    const before = { registry: await consumed(shop.urls.registry), wallet: await consumed(shop.urls.wallet) };
    const expected: Record<SplitService, string[]> = { registry: [], wallet: [], storage: [] };
    for (const m of forged) {
      const [topic, value] = [topicOf(m), JSON.stringify(m)];
      for (const headers of [[], [`${SIGNATURE_HEADER}=${signRecord(wrongKey, { topic, key: o.id, value })}`]]) {
        await kcatProduce(topic, o.id, value, headers);
        for (const reader of readers(topic)) expected[reader].push(`${topic} ${BAD_SIGNATURE}`);
      }
    }
    // Registry and wallet set theirs aside now; the order is untouched.
    await eventually(
      async () => {
        for (const s of ["registry", "wallet"] as const)
          expect((await consumed(shop.urls[s])).dead - before[s].dead).toBeGreaterThanOrEqual(expected[s].length);
      },
      FINAL_TIMEOUT_MS,
      250,
    );
    const waiting = await getOrder(o.id);
    expect(waiting.status).toBe("pending");
    expect(await balance(user)).toBe(8 * PRICE);
    // Storage comes back: it reads the forgeries too, sets them aside, and does its real part.
    await startService(shop, "storage");
    const done = await settled(o.id);
    const timeline = steps(done);
    expect(done.status).toBe("completed");
    expect(timeline.filter((s) => s.startsWith("storage:"))).toEqual(["storage:reserved"]);
    expect(timeline.some((s) => /refunded|released|rejected/.test(s))).toBe(false);
    expect(await balance(user)).toBe(8 * PRICE);
    expect(await ledgerFor(user, o.id)).toEqual([`debit ${2 * PRICE}`]);
    expect(await stockOf(product)).toEqual({ available: 3, reserved: 2 });
    for (const s of SERVICES) {
      const letters = await eventually(
        async () => {
          const mine = (await deadLetters(s)).filter((d) => d.key === o.id).map((d) => `${d.topic} ${d.error}`);
          expect(mine.length).toBeGreaterThanOrEqual(expected[s].length);
          return mine;
        },
        FINAL_TIMEOUT_MS,
        250,
      );
      figures.deadLetters[s] = (figures.deadLetters[s] ?? 0) + letters.length;
      expect(letters.sort()).toEqual(expected[s].sort());
    }
    const audit = await auditShop({
      urls: shop.urls,
      deposits: books.deposits,
      receipts: books.receipts,
      acknowledged: books.acknowledged,
    });
    count("kcat forgeries for a pending order", audit);
    if (audit.violations.length > 0) console.log(`audit after the kcat forgeries:\n${audit.violations.join("\n")}`);
    expect(audit.violations).toEqual([]);
  }, 180_000);
});

/**
 * Forges a StepSucceeded for an order registry never made and waits for registry's unknown_order
 * answer: the grace has passed since, and whatever was forged before it was answered by then.
 * Returns every record on the topics at that moment.
 */
async function sentinel() {
  const id = crypto.randomUUID();
  await forgeMessage(createMessage("StepSucceeded", { order_id: id, service: "wallet" }));
  return eventually(
    async () => {
      const all = await readAll();
      const answered = all.some((r) => r.key === id && r.message?.type === "OrderRejected" && r.message.payload.reason === "unknown_order");
      return answered ? all : false;
    },
    FINAL_TIMEOUT_MS,
    500,
  );
}

/** A message as `Type[service]` (or just its type when it names no service). */
const label = (m: Message) => ("service" in m.payload ? `${m.type}[${m.payload.service}]` : m.type);
