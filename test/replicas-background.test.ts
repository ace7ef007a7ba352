/**
 * Background work with several processes of one module on one PostgreSQL database: one outbox
 * relay leads (the others stand by and take over when it dies), and the registry's sweeps and the
 * pruners share their work without doing any of it twice. Each "process" here is a database
 * handle of its own (its own pool, its own sessions); the takeover test kills a real one (-9).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { count, eq, sql } from "drizzle-orm";
import postgres from "postgres";
import { idempotencyKeyPruneJob } from "../modules/registry/idempotency";
import { registryModule } from "../modules/registry/index";
import * as tables from "../modules/registry/schema";
import { rejectExpiredOrders, rejectUnknownOrders } from "../modules/registry/sweepers";
import type { Bus, BusRecord } from "../src/bus/bus";
import { createMessage } from "../src/contracts";
import { type Database, openDatabase } from "../src/db/database";
import { pruneAll } from "../src/db/retention";
import { createLogger } from "../src/log";
import { outboxWriter } from "../src/messaging/outbox";
import { type OutboxRelay, outboxLockKey, startOutboxRelay } from "../src/messaging/outbox-relay";
import { messagingPruneJobs, type RetentionConfig } from "../src/messaging/retention";
import { eventually } from "./support/eventually";
import { type PostgresCluster, startPostgresCluster } from "./support/postgres-cluster";
import { createDatabase, TOPICS } from "./support/shop-target";
import { stubBus } from "./support/stub-bus";

const log = createLogger("silent");
let cluster: PostgresCluster;
const opened: Database[] = [];
const relays: OutboxRelay[] = [];
const children: { kill(signal?: number): void }[] = [];

beforeAll(async () => {
  cluster = await startPostgresCluster({ name: "replicas-bg" });
}, 120_000);
afterAll(async () => {
  for (const c of children) c.kill(9);
  for (const r of relays) await r.stop().catch(() => {});
  for (const db of opened) await db.close().catch(() => {});
  await cluster?.stop();
});

/** A fresh database with registry's tables, and `n` handles on it (one per "process"). */
async function processes(n: number): Promise<{ url: string; dbs: Database[] }> {
  const url = await createDatabase(cluster.url);
  const dbs: Database[] = [];
  for (let i = 0; i < n; i++) {
    const db = await openDatabase({ driver: "postgres", url, poolSize: 4 }, log);
    opened.push(db);
    if (i === 0) await db.migrate(registryModule.name, registryModule.migrationsFolder);
    dbs.push(db);
  }
  return { url, dbs };
}

/** A bus that records what it is asked to publish; `stall` makes its publishes never return (a process stuck or about to die). */
function recordingBus(name: string, published: { by: string; record: BusRecord }[], opts: { stall?: boolean } = {}): Bus {
  return stubBus(async (records) => {
    if (opts.stall) return new Promise<void>(() => {});
    // Acknowledged on a later turn, as a broker would: several batches are in flight at once.
    await new Promise<void>((resolve) => setImmediate(resolve));
    for (const record of records) published.push({ by: name, record });
  }, 4);
}

/** Enqueues `perKey` StepSucceeded for each of `keys` orders, interleaved, each in its own transaction; returns message ids in commit order per key. */
async function enqueueMany(db: Database, keys: string[], perKey: number, nudge: () => void = () => {}): Promise<Map<string, string[]>> {
  const { enqueue } = outboxWriter(tables, TOPICS, nudge);
  const order = new Map<string, string[]>(keys.map((k) => [k, []]));
  for (let i = 0; i < perKey; i++) {
    await Promise.all(
      keys.map((key) =>
        db.transaction(async (tx) => {
          const m = createMessage("StepSucceeded", { order_id: key, service: "registry" });
          await enqueue(tx, m);
          order.get(key)?.push(m.id);
        }),
      ),
    );
  }
  return order;
}

const outboxStates = async (db: Database) =>
  db.read((q) => q.select({ state: tables.outbox.state, n: count() }).from(tables.outbox).groupBy(tables.outbox.state));

const allPublished = async (db: Database, total: number) => {
  const states = await outboxStates(db);
  return states.length === 1 && states[0]?.state === "published" && states[0].n === total;
};

/** Message ids per key in the order they were published (first occurrence). */
function publishedOrder(published: { record: BusRecord }[]): Map<string, string[]> {
  const byKey = new Map<string, string[]>();
  const seen = new Set<string>();
  for (const { record } of published) {
    const id = record.headers["message-id"] ?? "";
    if (seen.has(id)) continue;
    seen.add(id);
    const list = byKey.get(record.key ?? "") ?? [];
    list.push(id);
    byKey.set(record.key ?? "", list);
  }
  return byKey;
}

/** Backends holding the outbox's relay lock. */
async function lockHolders(url: string): Promise<number[]> {
  const [cls, key] = outboxLockKey(tables.outbox);
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const rows = await admin<{ pid: number }[]>`select pid from pg_locks where locktype = 'advisory' and granted
      and database = (select oid from pg_database where datname = current_database())
      and classid::bigint = ${cls}::bigint and objid::bigint = ${key}::bigint and objsubid = 2`;
    return rows.map((r) => r.pid);
  } finally {
    await admin.end();
  }
}

describe("outbox relay with two processes of a module (PostgreSQL)", () => {
  test("two relays at once: one leads, every row is published exactly once, in order per key; the other's commits wake the leader", async () => {
    const { url, dbs } = await processes(2);
    const [a, b] = dbs as [Database, Database];
    const published: { by: string; record: BusRecord }[] = [];
    const keys = Array.from({ length: 12 }, () => crypto.randomUUID());
    // A backlog before either starts (more than a claim batch), then both start at once.
    const before = await enqueueMany(a, keys, 25);
    // A 60 s poll: only nudges (local, or notified by the other process) can move rows in time.
    const [ra, rb] = await Promise.all([
      startOutboxRelay({ db: a, bus: recordingBus("a", published), tables, pollMs: 60_000, log, electEveryMs: 100 }),
      startOutboxRelay({ db: b, bus: recordingBus("b", published), tables, pollMs: 60_000, log, electEveryMs: 100 }),
    ]);
    relays.push(ra, rb);
    expect([ra.leading(), rb.leading()].filter(Boolean)).toHaveLength(1);
    const [leader, standby] = ra.leading() ? [ra, rb] : [rb, ra];
    const [, standbyDb] = ra.leading() ? [a, b] : [b, a];
    // More commits in both processes while the relays run.
    const moreKeys = Array.from({ length: 6 }, () => crypto.randomUUID());
    const [onLeader, onStandby] = await Promise.all([
      enqueueMany(ra.leading() ? a : b, moreKeys.slice(0, 3), 20, () => leader.nudge()),
      enqueueMany(standbyDb, moreKeys.slice(3), 20, () => standby.nudge()),
    ]);
    const total = keys.length * 25 + moreKeys.length * 20;
    await eventually(() => allPublished(a, total), 30_000);

    const ids = published.map((p) => p.record.headers["message-id"]);
    expect(new Set(ids).size).toBe(total);
    expect(ids).toHaveLength(total); // exactly once: no duplicates at all without a takeover
    expect(new Set(published.map((p) => p.by)).size).toBe(1);
    const order = publishedOrder(published);
    for (const expected of [before, onLeader, onStandby]) {
      for (const [key, list] of expected) expect(order.get(key)).toEqual(list);
    }
    expect(await lockHolders(url)).toHaveLength(1);
    expect([ra.leading(), rb.leading()].filter(Boolean)).toHaveLength(1);
  }, 120_000);

  test("the leader's lock connection breaks while it is still publishing: it stops claiming, the standby takes over and publishes the rest", async () => {
    const { url, dbs } = await processes(2);
    const [a, b] = dbs as [Database, Database];
    const published: { by: string; record: BusRecord }[] = [];
    // The first relay leads with a bus that never confirms: its rows stay in flight. (It tries for
    // the lead again only after a minute: the standby, trying every 100 ms, is the one to take it.)
    const stuck = await startOutboxRelay({
      db: a,
      bus: recordingBus("a", published, { stall: true }),
      tables,
      pollMs: 60_000,
      log,
      electEveryMs: 60_000,
    });
    relays.push(stuck);
    expect(stuck.leading()).toBe(true);
    const keys = Array.from({ length: 4 }, () => crypto.randomUUID());
    const first = await enqueueMany(a, keys, 10);
    stuck.nudge(); // one claim takes them all (the bus takes only a few batches in flight)
    await eventually(async () => (await outboxStates(a)).some((s) => s.state === "in_flight" && s.n === 40));
    const standby = await startOutboxRelay({ db: b, bus: recordingBus("b", published), tables, pollMs: 60_000, log, electEveryMs: 100 });
    relays.push(standby);
    expect(standby.leading()).toBe(false);

    // Its lock's connection is cut (as when the server drops it); the process itself lives on.
    const [holder] = await lockHolders(url);
    const admin = postgres(url, { max: 1, onnotice: () => {} });
    const cut = Date.now();
    await admin`select pg_terminate_backend(${holder ?? 0})`;
    await admin.end();
    await eventually(() => standby.leading(), 20_000);
    const tookOverMs = Date.now() - cut;
    await eventually(() => !stuck.leading(), 20_000);

    // New commits in the old leader's process: it nudges, but must not claim (its bus would swallow them).
    const later = await enqueueMany(a, keys, 10, () => stuck.nudge());
    await eventually(() => allPublished(a, 80), 30_000);
    expect(published.every((p) => p.by === "b")).toBe(true);
    const order = publishedOrder(published);
    for (const key of keys) expect(order.get(key)).toEqual([...(first.get(key) ?? []), ...(later.get(key) ?? [])]);
    expect(await lockHolders(url)).toHaveLength(1);
    console.log(`takeover after the lock connection was cut: ${tookOverMs} ms (standby tries every 100 ms)`);
  }, 120_000);

  test("kill -9 of the leading process: the standby takes over and publishes what it left in flight", async () => {
    const { url, dbs } = await processes(1);
    const [db] = dbs as [Database];
    const keys = Array.from({ length: 3 }, () => crypto.randomUUID());
    const order = await enqueueMany(db, keys, 10);
    // A separate process leads with a bus that never confirms, then dies without any cleanup.
    const root = join(import.meta.dir, "..");
    const script = `
      import { openDatabase } from ${JSON.stringify(join(root, "src/db/database.ts"))};
      import { createLogger } from ${JSON.stringify(join(root, "src/log.ts"))};
      import { startOutboxRelay } from ${JSON.stringify(join(root, "src/messaging/outbox-relay.ts"))};
      import * as tables from ${JSON.stringify(join(root, "modules/registry/schema.ts"))};
      const log = createLogger("silent");
      const db = await openDatabase({ driver: "postgres", url: process.env.RELAY_DB_URL, poolSize: 2 }, log);
      const bus = { kind: "memory", publishConcurrency: 4, start: async () => {}, joined: async () => {}, consumers: () => [],
        onFatal: () => {}, subscribe: () => {}, check: async () => {}, stop: async () => {}, publish: () => new Promise(() => {}) };
      const relay = await startOutboxRelay({ db, bus, tables, pollMs: 100, log });
      console.log(relay.leading() ? "leading" : "standing by");
    `;
    const child = Bun.spawn(["bun", "-e", script], {
      cwd: root,
      env: { ...process.env, RELAY_DB_URL: url },
      stdout: "ignore",
      stderr: "inherit",
    });
    children.push(child);
    // Its leadership is watched in the database: one backend holds the lock, its rows are in flight.
    await eventually(async () => (await lockHolders(url)).length === 1, 30_000);
    await eventually(async () => (await outboxStates(db)).some((s) => s.state === "in_flight" && s.n === 30), 30_000);
    const published: { by: string; record: BusRecord }[] = [];
    const standby = await startOutboxRelay({ db, bus: recordingBus("standby", published), tables, pollMs: 60_000, log });
    relays.push(standby);
    expect(standby.leading()).toBe(false);

    const killed = Date.now();
    child.kill(9);
    await child.exited;
    // PostgreSQL frees the lock once it sees the socket close (at once on loopback) ...
    await eventually(async () => (await lockHolders(url)).length === 0 || standby.leading(), 20_000, 5);
    const freedMs = Date.now() - killed;
    // ... and the standby takes it on its next try.
    await eventually(() => standby.leading(), 20_000, 5);
    const tookOverMs = Date.now() - killed;
    await eventually(() => allPublished(db, 30), 30_000);
    const seen = publishedOrder(published);
    for (const [key, list] of order) expect(seen.get(key)).toEqual(list);
    // How soon is a printed figure (ADR 0010 reads it), not a bound that a busy machine could break.
    console.log(`kill -9 of the leader: lock free after ${freedMs} ms, standby leading after ${tookOverMs} ms (it tries every 1 s)`);
  }, 120_000);
});

describe("registry's sweeps with two processes (PostgreSQL)", () => {
  test("two deadline sweepers racing on the same expired orders: each rejected once, one OrderRejected and one saga observation each", async () => {
    const { dbs } = await processes(2);
    const [a, b] = dbs as [Database, Database];
    const n = 1200; // more than one sweep batch
    await a.autocommit((q) =>
      q.execute(sql`insert into registry.orders (id, user_id, total_cents, created_at)
        select gen_random_uuid(), 1, 100, now() - interval '1 hour' from generate_series(1, ${sql.raw(String(n))})`),
    );
    const ended: number[] = [];
    const sweeper = async (db: Database) => {
      const { enqueue } = outboxWriter(tables, TOPICS, () => {});
      const ids: string[] = [];
      for (;;) {
        const got = await rejectExpiredOrders(db, enqueue, 60_000, (_status, seconds) => ended.push(seconds));
        if (got.length === 0) return ids;
        ids.push(...got);
      }
    };
    const all = (await Promise.all([sweeper(a), sweeper(b), sweeper(a), sweeper(b)])).flat();
    expect(all).toHaveLength(n);
    expect(new Set(all).size).toBe(n);
    expect(ended).toHaveLength(n);
    const [rejected] = await a.read((q) => q.select({ n: count() }).from(tables.orders).where(eq(tables.orders.status, "rejected")));
    expect(rejected?.n).toBe(n);
    const messages = await a.read((q) =>
      q
        .select({ key: tables.outbox.key, n: count() })
        .from(tables.outbox)
        .where(eq(tables.outbox.type, "OrderRejected"))
        .groupBy(tables.outbox.key),
    );
    expect(messages).toHaveLength(n);
    expect(messages.every((m) => m.n === 1)).toBe(true);
    const [events] = await a.read((q) => q.select({ n: count() }).from(tables.orderEvents).where(eq(tables.orderEvents.step, "rejected")));
    expect(events?.n).toBe(n);
  }, 120_000);

  test("two unknown-order sweepers racing: each unknown order rejected once", async () => {
    const { dbs } = await processes(2);
    const [a, b] = dbs as [Database, Database];
    const n = 1200;
    await a.autocommit((q) =>
      q.execute(sql`insert into registry.unknown_orders (order_id, service, first_seen_at)
        select gen_random_uuid(), 'wallet', now() - interval '1 hour' from generate_series(1, ${sql.raw(String(n))})`),
    );
    const sweeper = async (db: Database) => {
      const { enqueue } = outboxWriter(tables, TOPICS, () => {});
      const ids: string[] = [];
      for (;;) {
        const got = await rejectUnknownOrders(db, enqueue, 1000);
        if (got.length === 0) {
          // Empty: nothing left, or every due row is locked by the other sweeper right now.
          const [left] = await db.read((q) =>
            q.select({ n: count() }).from(tables.unknownOrders).where(sql`${tables.unknownOrders.answeredAt} is null`),
          );
          if (left?.n === 0) return ids;
          continue;
        }
        ids.push(...got);
      }
    };
    const results = await Promise.all([sweeper(a), sweeper(b), sweeper(a), sweeper(b)]);
    const all = results.flat();
    expect(all).toHaveLength(n);
    expect(new Set(all).size).toBe(n);
    const messages = await a.read((q) =>
      q
        .select({ key: tables.outbox.key, n: count() })
        .from(tables.outbox)
        .where(eq(tables.outbox.type, "OrderRejected"))
        .groupBy(tables.outbox.key),
    );
    expect(messages).toHaveLength(n);
    expect(messages.every((m) => m.n === 1)).toBe(true);
  }, 120_000);
});

describe("pruning with two processes (PostgreSQL)", () => {
  test("two pruners of every registry job at once: no error, every expired row pruned once, recent rows kept", async () => {
    const { dbs } = await processes(2);
    const [a, b] = dbs as [Database, Database];
    const config: RetentionConfig = {
      inbox_retention_hours: 1,
      outbox_retention_hours: 1,
      dead_letter_retention_days: 1,
      unresolved_dead_letter_retention_days: 1,
    };
    const jobs = [...messagingPruneJobs(tables, config), idempotencyKeyPruneJob(3_600_000)];
    const old = 12_000;
    await a.autocommit(async (q) => {
      await q.execute(sql`insert into registry.inbox (message_id, type, topic, processed_at)
        select gen_random_uuid(), 'x', 't', now() - interval '2 hours' from generate_series(1, ${sql.raw(String(old))})`);
      await q.execute(
        sql`insert into registry.inbox (message_id, type, topic) select gen_random_uuid(), 'x', 't' from generate_series(1, 10)`,
      );
      await q.execute(sql`insert into registry.idempotency_keys (key, request_hash, status_code, response, created_at)
        select 'k' || i, 'h', 201, '{}'::jsonb, now() - interval '2 hours' from generate_series(1, ${sql.raw(String(old))}) i`);
    });
    const { enqueue } = outboxWriter(tables, TOPICS, () => {});
    await a.transaction(async (tx) => {
      for (let i = 0; i < 50; i++)
        await enqueue(tx, createMessage("StepSucceeded", { order_id: crypto.randomUUID(), service: "registry" }));
    });
    await a.autocommit((q) => q.execute(sql`update registry.outbox set state = 'published', published_at = now() - interval '2 hours'`));

    const results = await Promise.all([pruneAll(a, jobs), pruneAll(b, jobs), pruneAll(a, jobs), pruneAll(b, jobs)]);
    const sum = (name: string) => results.reduce((s, r) => s + (r[name] ?? 0), 0);
    expect(sum("inbox")).toBe(old);
    expect(sum("idempotency_keys")).toBe(old);
    expect(sum("outbox")).toBe(50);
    const [inboxLeft] = await a.read((q) => q.select({ n: count() }).from(tables.inbox));
    expect(inboxLeft?.n).toBe(10);
    const [keysLeft] = await a.read((q) => q.select({ n: count() }).from(tables.idempotencyKeys));
    expect(keysLeft?.n).toBe(0);
  }, 120_000);
});
