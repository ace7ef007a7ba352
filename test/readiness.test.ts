/**
 * Readiness: a restarted service answers HTTP at once and says it is not ready until its
 * consumer group has joined; a consumer that crashes for good stops the process (exit 1);
 * /health/ready fails while the outbox backlog is over its bound.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import type { Shop } from "../src/app/shop";
import { eventually } from "./support/eventually";
import { adminHeaders, call, getJson } from "./support/http";
import { type KafkaMock, startKafkaMock } from "./support/kafka-mock";
import { type ShopProcess, startShopProcess } from "./support/process";
import { FIXTURE_CONFIG, processEnv, type ShopTarget, startInProcess, TOPICS } from "./support/shop-target";
import { MOCK_KAFKA_SETTINGS, type SplitShop, startSplitShop } from "./support/split-shop";

/** Kafka API keys and error codes the broker answers with in the crash tests. */
const JOIN_GROUP = 11;
const HEARTBEAT = 12;
const GROUP_AUTHORIZATION_FAILED = 30;

const exitWithin = async (p: ShopProcess, ms: number): Promise<number> => {
  let timer: Timer | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still running after ${ms} ms:\n${p.logs.slice(-15).join("\n")}`)), ms);
  });
  try {
    return await Promise.race([p.proc.exited, late]);
  } finally {
    clearTimeout(timer);
  }
};

const logged = (p: ShopProcess, msg: string) =>
  p.logs
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return {};
      }
    })
    .filter((e) => e.msg === msg);

describe("kill -9 and restart of a split service (Kafka mock, PostgreSQL)", () => {
  let shop: SplitShop;
  beforeAll(async () => {
    shop = await startSplitShop();
  }, 180_000);
  afterAll(async () => {
    await shop?.stop();
  }, 60_000);

  /** Kills wallet with SIGKILL and starts it again on its port, returning as soon as it listens. */
  const killAndRestartWallet = async (): Promise<ShopProcess> => {
    const old = shop.processes.wallet;
    old.proc.kill("SIGKILL");
    await old.proc.exited;
    const env = { ...shop.env, WALLET_PORT: new URL(shop.urls.wallet).port };
    const wallet = await startShopProcess(["--modules", "wallet"], env, 1, 60_000, { waitReady: false });
    shop.processes.wallet = wallet;
    return wallet;
  };

  test("it answers at once: /health 503 with the reason and deposits 503 not_ready until its group joins, then 200", async () => {
    const base = shop.urls.wallet;
    expect((await call(base, "POST", "/wallets/81/deposits", { amount_cents: 1500 }, adminHeaders)).status).toBe(201);

    const wallet = await killAndRestartWallet();
    // The old member stays in the group until its session times out, so the group cannot be
    // joined for seconds yet; HTTP must not wait for that: it listens, and answers, before ready.
    expect(wallet.timings.readyMs).toBeNull();
    console.log(`restarted wallet listening after ${Math.round(wallet.timings.listeningMs)} ms, not yet ready`);

    const health = await call(base, "GET", "/health");
    expect(health.status).toBe(503);
    expect(health.body.status).toBe("fail");
    expect(health.body.checks.bus.error).toMatch(/^starting: /);
    expect((await call(base, "GET", "/health/ready")).status).toBe(503);
    expect(await getJson(base, "/health/live")).toEqual({ status: "ok" });

    // Writes are refused with a reason and Retry-After; reads are served.
    const refused = await call(base, "POST", "/wallets/81/deposits", { amount_cents: 100 }, adminHeaders);
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe("not_ready");
    expect(refused.body.error.message).toMatch(/not ready \(starting: /);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
    expect((await getJson(base, "/wallets/81")).balance_cents).toBe(1500);

    // Once connected, the reason names the group, and the consumers section says it is joining.
    const joining = await eventually(async () => {
      const h = await call(base, "GET", "/health");
      return h.status === 503 && h.body.checks.bus.error === "starting: consumer group wallet not joined yet" ? h.body : false;
    }, 30_000);
    expect(joining.consumers.wallet).toMatchObject({ state: "joining", joined: false, partitions: {} });
    expect(wallet.timings.readyMs).toBeNull();

    // Then it joins by itself: ready, /health 200, writes accepted, and it consumes again.
    await eventually(() => wallet.timings.readyMs !== null, 90_000, 100);
    const ready = await getJson(base, "/health");
    expect(ready.status).toBe("ok");
    expect(ready.consumers.wallet).toMatchObject({
      topics: [TOPICS.new_orders, TOPICS.rejected_orders],
      state: "joined",
      joined: true,
      partitions: { [TOPICS.new_orders]: [0, 1, 2], [TOPICS.rejected_orders]: [0, 1, 2] },
    });
    expect((await call(base, "GET", "/health/ready")).status).toBe(200);
    expect((await call(base, "POST", "/wallets/81/deposits", { amount_cents: 100 }, adminHeaders)).status).toBe(201);
    expect((await call(shop.urls.storage, "POST", "/stock/81/receipts", { quantity: 1 }, adminHeaders)).status).toBe(201);
    const placed = await call(shop.urls.registry, "POST", "/orders", { user_id: 81, items: [{ product_id: 81, quantity: 1 }] });
    expect(placed.status).toBe(201);
    const done = await eventually(async () => {
      const o = await getJson(shop.urls.registry, `/orders/${placed.body.id}`);
      return o.status === "pending" ? false : o;
    }, 60_000);
    expect(done.status).toBe("completed");
    expect((await getJson(base, "/wallets/81")).balance_cents).toBe(600);
    console.log(
      `[readiness] wallet restarted after kill -9: listening after ${Math.round(wallet.timings.listeningMs)} ms, ` +
        `ready after ${Math.round(wallet.timings.readyMs ?? 0)} ms (KAFKA_SESSION_TIMEOUT_MS=${MOCK_KAFKA_SETTINGS.KAFKA_SESSION_TIMEOUT_MS})`,
    );
  }, 180_000);

  test("SIGTERM while the group is still joining stops it cleanly with exit 0", async () => {
    const wallet = await killAndRestartWallet();
    await eventually(
      async () => /not joined yet/.test((await call(shop.urls.wallet, "GET", "/health")).body.checks?.bus?.error ?? ""),
      30_000,
    );
    expect(wallet.proc.exitCode).toBeNull();
    wallet.proc.kill("SIGTERM");
    expect(await exitWithin(wallet, 30_000)).toBe(0);
    expect(logged(wallet, "stopped")).toHaveLength(1);
    expect(logged(wallet, "ready")).toHaveLength(0);
    // Started again it becomes ready, for the tests after this one and a clean stop().
    shop.processes.wallet = await startShopProcess(
      ["--modules", "wallet"],
      { ...shop.env, WALLET_PORT: new URL(shop.urls.wallet).port },
      1,
      90_000,
    );
    expect((await call(shop.urls.wallet, "GET", "/health")).status).toBe(200);
  }, 180_000);
});

describe("a consumer that crashes for good (wallet alone: Kafka mock, PGlite)", () => {
  let mock: KafkaMock;
  const started: ShopProcess[] = [];
  beforeAll(async () => {
    mock = await startKafkaMock(Object.values(TOPICS).map((t) => `${t}:3`));
  }, 60_000);
  afterAll(async () => {
    for (const p of started) if (p.proc.exitCode === null) p.proc.kill("SIGKILL");
    await mock?.stop();
  }, 60_000);

  const startWallet = async (waitReady: boolean) => {
    const env = processEnv({ BUS: "kafka", KAFKA_BROKERS: mock.brokers, DATA_DIR: ":memory:", MODULES: "wallet", ...MOCK_KAFKA_SETTINGS });
    const p = await startShopProcess([], env, 1, 90_000, { waitReady });
    started.push(p);
    return p;
  };

  /** The crash as logged: kafkajs's error, and that kafkajs does not restart the consumer. */
  const expectCrashLogged = (p: ShopProcess) => {
    const crash = logged(p, "consumer crashed; kafkajs does not restart it");
    expect(crash).toHaveLength(1);
    expect(crash[0]).toMatchObject({ group: "wallet", restart: false, err: { message: expect.stringMatching(/authoriz/i) } });
    expect(logged(p, "stopped")).toHaveLength(1); // a clean stop before the exit
  };

  test("the broker refuses the join: /health is 503 all along, then the process stops cleanly and exits 1", async () => {
    // A broker whose ACLs deny the group answers JoinGroup with GROUP_AUTHORIZATION_FAILED,
    // which kafkajs does not retry; answered after 3 s so that the wait can be watched.
    mock.failRequests(JOIN_GROUP, 1, GROUP_AUTHORIZATION_FAILED, 3000);
    const wallet = await startWallet(false);
    const statuses: number[] = [];
    const reasons = new Set<string>();
    while (wallet.proc.exitCode === null) {
      const h = await call(wallet.urls.wallet as string, "GET", "/health").catch(() => null);
      if (h) {
        statuses.push(h.status);
        reasons.add(h.body.checks.bus.error);
      }
      await Bun.sleep(100);
    }
    expect(await exitWithin(wallet, 30_000)).toBe(1);
    expect(statuses.length).toBeGreaterThan(0);
    expect(statuses.every((s) => s === 503)).toBe(true);
    expect([...reasons]).toContain("starting: consumer group wallet not joined yet");
    expectCrashLogged(wallet);
    expect(logged(wallet, "ready")).toHaveLength(0);
  }, 120_000);

  test("a joined consumer whose heartbeat is refused: /health showed it joined; the process stops cleanly and exits 1", async () => {
    const wallet = await startWallet(true);
    const health = await getJson(wallet.urls.wallet as string, "/health");
    expect(health.consumers.wallet).toMatchObject({
      state: "joined",
      joined: true,
      partitions: { [TOPICS.new_orders]: [0, 1, 2], [TOPICS.rejected_orders]: [0, 1, 2] },
      last_error: null,
    });
    await eventually(async () => (await getJson(wallet.urls.wallet as string, "/health")).consumers.wallet.last_poll_at !== null, 30_000);
    // Access to the group revoked while it runs: the next heartbeat is refused, kafkajs gives up.
    mock.failRequests(HEARTBEAT, 1, GROUP_AUTHORIZATION_FAILED);
    expect(await exitWithin(wallet, 60_000)).toBe(1);
    expectCrashLogged(wallet);
    expect(logged(wallet, "failed after start; not ready")).toHaveLength(1);
  }, 120_000);
});

describe("an outbox backlog over ready_max_outbox_backlog (one process, PGlite)", () => {
  const BOUND = 2;
  let dir: string;
  let t: ShopTarget & { shop: Shop };
  beforeAll(async () => {
    // The fixture config, with wallet's bound lowered.
    dir = mkdtempSync(join(tmpdir(), "shop-ready-"));
    for (const f of readdirSync(FIXTURE_CONFIG)) copyFileSync(join(FIXTURE_CONFIG, f), join(dir, f));
    writeFileSync(
      join(dir, "wallet.yaml"),
      `${await Bun.file(join(FIXTURE_CONFIG, "wallet.yaml")).text()}\nready_max_outbox_backlog: ${BOUND}\n`,
    );
    t = await startInProcess({ CONFIG_DIR: dir });
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Rows the bus has not confirmed (as when Kafka stops acknowledging): no relay sends them again before a restart. */
  const stuckRows = (n: number) =>
    t.shop.db.autocommit((q) =>
      q.execute(sql`insert into wallet.outbox (id, topic, key, type, envelope, state)
        select gen_random_uuid(), ${TOPICS.success}, 'k', 'StepSucceeded', '{}'::jsonb, 'in_flight' from generate_series(1, ${n})`),
    );

  test("at the bound it is ready; past it /health/ready is 503 naming the backlog, while /health and /health/live stay 200", async () => {
    const wallet = t.urls.wallet;
    await stuckRows(BOUND);
    expect((await call(wallet, "GET", "/health/ready")).status).toBe(200);

    await stuckRows(1);
    const ready = await call(wallet, "GET", "/health/ready");
    expect(ready.status).toBe(503);
    expect(ready.body.checks.outbox).toMatchObject({
      status: "fail",
      error: `outbox backlog ${BOUND + 1} is over ready_max_outbox_backlog (${BOUND})`,
    });
    expect(ready.body.checks.database.status).toBe("ok");
    const health = await call(wallet, "GET", "/health");
    expect(health.status).toBe(200);
    expect(health.body.checks.outbox).toBeUndefined();
    expect(await getJson(wallet, "/health/live")).toEqual({ status: "ok" });
    // Each service judges its own outbox (registry's default bound is 10000).
    expect((await call(t.urls.registry, "GET", "/health/ready")).status).toBe(200);
    // Not ready is not refusing: a deposit is still taken.
    expect((await call(wallet, "POST", "/wallets/91/deposits", { amount_cents: 100 }, adminHeaders)).status).toBe(201);

    // Published at last: ready again.
    await t.shop.db.autocommit((q) => q.execute(sql`update wallet.outbox set state = 'published', published_at = now() where key = 'k'`));
    await eventually(async () => (await call(wallet, "GET", "/health/ready")).status === 200);
  }, 60_000);
});
