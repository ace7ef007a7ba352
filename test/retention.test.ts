/** Retention: old bookkeeping rows are pruned in bounded batches, recent ones kept; two pruners at once do not collide; gauges read the tables. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { count, inArray, sql } from "drizzle-orm";
import { walletModule } from "../modules/wallet/index";
import * as tables from "../modules/wallet/schema";
import type { Database } from "../src/db/database";
import { openDatabase } from "../src/db/database";
import { PRUNE_BATCH, pruneAll, pruneOlderThan } from "../src/db/retention";
import { createLogger } from "../src/log";
import { messagingGauges } from "../src/messaging/gauges";
import { messagingPruneJobs, type RetentionConfig } from "../src/messaging/retention";
import { Registry } from "../src/metrics/registry";
import { rejectedOrdersPruneJob } from "../src/saga/rejections";
import { openModuleDatabase } from "./support/module-db";
import { type PostgresCluster, startPostgresCluster } from "./support/postgres-cluster";
import { createDatabase } from "./support/shop-target";

const log = createLogger("silent");
const DEFAULTS: RetentionConfig = {
  inbox_retention_hours: 168,
  outbox_retention_hours: 24,
  dead_letter_retention_days: 30,
  unresolved_dead_letter_retention_days: 90,
};
const ago = (interval: string) => sql`now() - ${interval}::interval`;
/** What a saga participant (wallet, storage) prunes: its messaging tables and its remembered rejections. */
const participantJobs = () => [
  ...messagingPruneJobs(tables, DEFAULTS),
  rejectedOrdersPruneJob(tables.rejectedOrders, DEFAULTS.inbox_retention_hours),
];

let cluster: PostgresCluster | null = null;
const opened: Database[] = [];
afterAll(async () => {
  for (const db of opened) await db.close();
  await cluster?.stop();
});

async function openPostgres(url: string): Promise<Database> {
  const db = await openDatabase({ driver: "postgres", url, poolSize: 4 }, log);
  opened.push(db);
  return db;
}

const backends: [string, () => Promise<Database>][] = [
  [
    "pglite",
    async () => {
      const db = await openModuleDatabase(walletModule);
      opened.push(db);
      return db;
    },
  ],
  [
    "postgres",
    async () => {
      cluster ??= await startPostgresCluster({ name: "retention" });
      const db = await openPostgres(await createDatabase(cluster.url));
      await db.migrate(walletModule.name, walletModule.migrationsFolder);
      return db;
    },
  ],
];

describe.each(backends)("retention on %s", (_name, open) => {
  let db: Database;
  beforeAll(async () => {
    db = await open();
  }, 120_000);

  /** Ids (or keys) of rows that still exist. */
  const remaining = async () =>
    db.read(async (q) => ({
      inbox: (await q.select({ id: tables.inbox.type }).from(tables.inbox)).map((r) => r.id).sort(),
      outbox: (await q.select({ id: tables.outbox.type }).from(tables.outbox)).map((r) => r.id).sort(),
      deadLetters: (await q.select({ id: tables.deadLetters.key }).from(tables.deadLetters)).map((r) => r.id).sort(),
      rejected: (await q.select({ id: tables.rejectedOrders.reason }).from(tables.rejectedOrders)).map((r) => r.id).sort(),
    }));

  test("rows past their window go, recent ones and what is still needed stay", async () => {
    const uuid = () => crypto.randomUUID();
    await db.transaction(async (tx) => {
      // The `type`, `key` and `reason` columns carry the row's expected fate.
      await tx.insert(tables.inbox).values([
        { messageId: uuid(), type: "old", topic: "t", processedAt: ago("169 hours") },
        { messageId: uuid(), type: "recent", topic: "t", processedAt: ago("167 hours") },
      ]);
      const envelope = {};
      await tx.insert(tables.outbox).values([
        { id: uuid(), topic: "t", key: "k", type: "published-old", envelope, state: "published", publishedAt: ago("25 hours") },
        { id: uuid(), topic: "t", key: "k", type: "published-recent", envelope, state: "published", publishedAt: ago("23 hours") },
        // Never published, however old: it must still be sent.
        { id: uuid(), topic: "t", key: "k", type: "pending-old", envelope, state: "pending", createdAt: ago("30 days") },
        { id: uuid(), topic: "t", key: "k", type: "in-flight-old", envelope, state: "in_flight", createdAt: ago("30 days") },
      ]);
      const letter = { topic: "t", value: "v", headers: {}, error: "e" };
      await tx.insert(tables.deadLetters).values([
        { ...letter, key: "resolved-old", receivedAt: ago("60 days"), resolvedAt: ago("31 days") },
        { ...letter, key: "resolved-recent", receivedAt: ago("60 days"), resolvedAt: ago("29 days") },
        { ...letter, key: "dead-old", receivedAt: ago("91 days") },
        { ...letter, key: "dead-recent", receivedAt: ago("89 days") },
      ]);
      await tx.insert(tables.rejectedOrders).values([
        { orderId: uuid(), service: "storage", reason: "old", createdAt: ago("169 hours") },
        { orderId: uuid(), service: "storage", reason: "recent", createdAt: ago("167 hours") },
      ]);
    });

    const pruned = await pruneAll(db, participantJobs());
    expect(pruned).toEqual({ inbox: 1, outbox: 1, resolved_dead_letters: 1, unresolved_dead_letters: 1, rejected_orders: 1 });
    expect(await remaining()).toEqual({
      inbox: ["recent"],
      outbox: ["in-flight-old", "pending-old", "published-recent"],
      deadLetters: ["dead-recent", "resolved-recent"],
      rejected: ["recent"],
    });
    // A second run finds nothing more.
    expect(Object.values(await pruneAll(db, participantJobs())).every((n) => n === 0)).toBe(true);
  });

  test("a backlog larger than a batch is pruned in several bounded batches", async () => {
    const n = PRUNE_BATCH * 2 + 7;
    await db.autocommit((q) =>
      q.execute(sql`insert into wallet.inbox (message_id, type, topic, processed_at)
        select gen_random_uuid(), 'bulk', 't', now() - interval '200 hours' from generate_series(1, ${sql.raw(String(n))})`),
    );
    const before = db.stats.statements;
    const job = messagingPruneJobs(tables, DEFAULTS).find((j) => j.name === "inbox");
    if (!job) throw new Error("no inbox job");
    expect(await pruneOlderThan(db, job)).toBe(n);
    expect(db.stats.statements - before).toBe(3); // three DELETEs of at most PRUNE_BATCH rows
    const [left] = await db.read((q) =>
      q
        .select({ n: count() })
        .from(tables.inbox)
        .where(inArray(tables.inbox.type, ["bulk"])),
    );
    expect(left?.n).toBe(0);
  });

  test("gauges count dead letters by topic and state, and the unpublished backlog, from the tables", async () => {
    const uuid = () => crypto.randomUUID();
    await db.transaction(async (tx) => {
      await tx.delete(tables.deadLetters);
      await tx.delete(tables.outbox);
      const letter = { value: "v", headers: {}, error: "e", key: "k" };
      await tx.insert(tables.deadLetters).values([
        { ...letter, topic: "new_orders" },
        { ...letter, topic: "new_orders" },
        { ...letter, topic: "new_orders", resolvedAt: sql`now()` },
        { ...letter, topic: "rejected_orders", resolvedAt: sql`now()` },
      ]);
      const envelope = {};
      await tx.insert(tables.outbox).values([
        { id: uuid(), topic: "t", key: "k", type: "x", envelope, state: "pending", createdAt: ago("90 seconds") },
        { id: uuid(), topic: "t", key: "k", type: "x", envelope, state: "pending" },
        { id: uuid(), topic: "t", key: "k", type: "x", envelope, state: "in_flight" },
        { id: uuid(), topic: "t", key: "k", type: "x", envelope, state: "published", createdAt: ago("1 hour"), publishedAt: sql`now()` },
      ]);
    });
    const registry = new Registry();
    messagingGauges(registry, db, tables);
    const samples = (await registry.getMetricsAsJSON()).flatMap((m) =>
      m.values.map((v) => ({ name: m.name.replace(/^shop_/, ""), labels: v.labels, value: v.value })),
    );
    const value = (name: string, labels?: Record<string, string>) =>
      samples.find((s) => s.name === name && JSON.stringify(s.labels ?? {}) === JSON.stringify(labels ?? {}))?.value;
    expect(value("dead_letters", { topic: "new_orders", state: "dead" })).toBe(2);
    expect(value("dead_letters", { topic: "new_orders", state: "resolved" })).toBe(1);
    expect(value("dead_letters", { topic: "rejected_orders", state: "dead" })).toBe(0);
    expect(value("dead_letters", { topic: "rejected_orders", state: "resolved" })).toBe(1);
    expect(value("outbox_backlog", { state: "pending" })).toBe(2);
    expect(value("outbox_backlog", { state: "in_flight" })).toBe(1);
    expect(value("outbox_pending")).toBe(3);
    const oldest = value("outbox_oldest_unpublished_seconds") ?? 0;
    expect(oldest).toBeGreaterThanOrEqual(90);
    expect(oldest).toBeLessThan(3600);
  });
});

describe("two pruners at once (PostgreSQL: two processes of one module)", () => {
  test("they share the work without waiting on each other or deleting a row twice", async () => {
    cluster ??= await startPostgresCluster({ name: "retention" });
    const url = await createDatabase(cluster.url);
    const first = await openPostgres(url);
    await first.migrate(walletModule.name, walletModule.migrationsFolder);
    const second = await openPostgres(url);
    const n = PRUNE_BATCH * 4;
    await first.autocommit((q) =>
      q.execute(sql`insert into wallet.inbox (message_id, type, topic, processed_at)
        select gen_random_uuid(), 'bulk', 't', now() - interval '200 hours' from generate_series(1, ${sql.raw(String(n))})`),
    );
    const job = messagingPruneJobs(tables, DEFAULTS).find((j) => j.name === "inbox");
    if (!job) throw new Error("no inbox job");
    const [a, b] = await Promise.all([pruneOlderThan(first, job), pruneOlderThan(second, job)]);
    expect(a + b).toBe(n);
    const [left] = await first.read((q) => q.select({ n: count() }).from(tables.inbox));
    expect(left?.n).toBe(0);
  }, 120_000);
});
