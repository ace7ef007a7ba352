/**
 * The fault simulator: the whole shop (registry, wallet, storage) in this process over a
 * simulated broker, one step at a time, every choice drawn from one seed: which order is placed,
 * which partition delivers next and how much, lost acknowledgements (redeliveries), failed
 * publishes, database errors, crashes (idle, between a commit and its acknowledgement, between two
 * statements of a transaction) and how far simulated time jumps (deadlines, sweepers, relay polls).
 * At the end the shop's audit runs. The same seed gives the same trace, byte for byte.
 */
import { join } from "node:path";
import type { z } from "zod";
import { auditShop, type ReportSources } from "../src/saga/audit/shop-audit";
import type { BusRecord } from "../src/bus/bus";
import { type ModuleName, loadModuleConfig } from "../src/config";
import { AUDIT_REPORT_SCHEMAS, type AuditReports } from "../src/contracts/audit";
import { type Database, openDatabase } from "../src/db/database";
import { Registry } from "../src/http/metrics";
import type { LogFields, Logger } from "../src/log";
import type { RunningModule, ShopModule } from "../src/module";
import { MODULES } from "../src/modules";
import { type Lane, type PublishFate, SimBroker } from "./broker";
import { Random } from "./random";
import { installVirtualEnv, type VirtualEnv } from "./virtual-env";

/** Bugs the harness can plant, to prove the simulator catches them. */
export type PlantedBug = "no-inbox-dedupe" | "ack-before-apply";
export const PLANTED_BUGS: readonly PlantedBug[] = ["no-inbox-dedupe", "ack-before-apply"];

/** How one run goes. */
export interface SimOptions {
  seed: number;
  orders: number;
  /** Fault injection on (default); off: only scheduling (order, delays, time) is drawn. */
  faults?: boolean;
  plant?: PlantedBug;
}

/** Fault kinds injected, counted per run. */
export const FAULT_KINDS = [
  "ack-lost",
  "crash-before-ack",
  "crash-in-transaction",
  "crash-idle",
  "db-error",
  "handler-error",
  "commit-answer-lost",
  "publish-failed",
  "publish-ack-lost",
  "time-jump",
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** What a run came to. */
export interface SimResult {
  seed: number;
  orders: number;
  /** The trace, one step per line, ids replaced by stable labels (order #3, msg #12). */
  trace: string;
  /** SHA-256 of the trace. */
  hash: string;
  /** The audit's violations (labels in place of ids). */
  violations: string[];
  faults: Record<FaultKind, number>;
  /** Orders by final status. */
  outcomes: Record<string, number>;
  steps: number;
  /** Simulated seconds the run covered. */
  simulatedSeconds: number;
  /** The trace lines of the first order a violation names (empty when none). */
  firstViolatingOrder: { label: string; lines: string[] } | null;
}

const MODULE_ORDER: ModuleName[] = ["registry", "wallet", "storage"];
const CONFIG_DIR = join(import.meta.dir, "../config");
const START = Date.UTC(2030, 0, 1);
const PARTITIONS = 3;
const USERS = 8;
const PRODUCTS = 12;
const SAGA_DEADLINE_SECONDS = 30;
/** An id in the trace, with the word "order " that may precede it (the label says it). */
const LABELLED = /(?:order )?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/g;

/** Database faults the scheduler arms, each as likely. */
const ARMED_FAULTS = ["db-error", "handler-error", "crash-in-transaction", "commit-answer-lost"] as const;

/** Thrown by a statement when the simulated process crashes inside a transaction. */
class SimulatedCrash extends Error {
  override readonly name = "SimulatedCrash";
}

/** A database error of the kind a dropped connection gives (SQLSTATE 57P01): callers retry it. */
class SimulatedDbError extends Error {
  readonly code = "57P01";
  constructor() {
    super("simulated: terminating connection due to administrator command");
  }
}

/** A statement refused inside a transaction (SQLSTATE 40001): the handler fails, the consumer retries it one by one. */
class SimulatedSerializationFailure extends Error {
  readonly code = "40001";
  constructor() {
    super("simulated: could not serialize access due to concurrent update");
  }
}

/** One incarnation of the process: its modules over a gate that closes when it crashes. */
interface Incarnation {
  epoch: number;
  dead: boolean;
  modules: Map<ModuleName, RunningModule>;
}

/** Runs one seed. */
export async function simulate(opts: SimOptions): Promise<SimResult> {
  const random = new Random(opts.seed);
  const faultsOn = opts.faults !== false;
  // Independent streams: what the modules draw (ids) does not shift the scheduler's choices.
  const idRandom = random.fork();
  const workRandom = random.fork();
  const sched = random.fork();
  const env = installVirtualEnv(START, idRandom);
  // Hono's default error handler (a module router serves without the HTTP shell here) prints to console.error.
  const consoleError = console.error;
  console.error = () => {};
  try {
    return await run(opts, env, workRandom, sched, faultsOn);
  } finally {
    console.error = consoleError;
    env.uninstall();
  }
}

async function run(opts: SimOptions, env: VirtualEnv, work: Random, sched: Random, faultsOn: boolean): Promise<SimResult> {
  const lines: string[] = [];
  let steps = 0;
  const stamp = () => `${((env.now() - START) / 1000).toFixed(3).padStart(9)}s`;
  const trace = (text: string) => lines.push(`${stamp()} ${text}`);
  const faults = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  let injecting = faultsOn;
  const fault = (kind: FaultKind, text: string) => {
    faults[kind] += 1;
    trace(`FAULT ${kind}: ${text}`);
  };

  // --- the database: one in-memory PGlite for the run; statements pass the fault hook ---
  let txDepth = 0;
  let armed: { kind: (typeof ARMED_FAULTS)[number]; countdown: number } | null = null;
  let crashRequested: string | null = null;
  let current: Incarnation | null = null;
  const onStatement = () => {
    if (!armed || !injecting || !current || current.dead) return;
    if (armed.kind === "commit-answer-lost") return; // counted in units of work, see gated()
    if (armed.kind !== "db-error" && txDepth === 0) return;
    if (--armed.countdown > 0) return;
    const kind = armed.kind;
    armed = null;
    if (kind === "db-error") {
      fault("db-error", "a statement fails (connection dropped)");
      throw new SimulatedDbError();
    }
    if (kind === "handler-error") {
      fault("handler-error", "a statement inside a transaction fails (serialization failure)");
      throw new SimulatedSerializationFailure();
    }
    fault("crash-in-transaction", "the process dies between two statements of a transaction");
    current.dead = true;
    crashRequested = "crash inside a transaction";
    throw new SimulatedCrash("simulated crash");
  };
  const base = await openDatabase({ driver: "pglite", dataDir: null }, silentLog(), { onStatement });
  const gated = (inc: Incarnation): Database => {
    const gate = () => {
      if (inc.dead) throw new SimulatedCrash("process crashed");
    };
    /** A unit of work committed; a "commit-answer-lost" fault makes its caller see a dropped connection anyway. */
    const answered = <T>(value: T): T => {
      if (armed?.kind === "commit-answer-lost" && injecting && !inc.dead && --armed.countdown <= 0) {
        armed = null;
        fault("commit-answer-lost", "a write committed, then the connection dropped before its answer");
        throw new SimulatedDbError();
      }
      return value;
    };
    return {
      driver: base.driver,
      get stats() {
        return base.stats;
      },
      pool: () => base.pool(),
      transaction: (fn) =>
        base
          .transaction(async (tx) => {
            gate();
            txDepth += 1;
            try {
              return await fn(tx);
            } finally {
              txDepth -= 1;
            }
          })
          .then(answered),
      read: (fn) => base.read(async (q) => (gate(), fn(q))),
      autocommit: (fn) => base.autocommit(async (q) => (gate(), fn(q))).then(answered),
      migrate: (name, folder) => base.migrate(name, folder),
      ping: async () => (gate(), base.ping()),
      close: async () => {},
    };
  };

  // --- the workload: balances, stock and orders drawn from the seed ---
  const balances = Array.from({ length: USERS }, (_, i) => ({ user_id: i + 1, balance_cents: work.int(0, 12) * 100_000 }));
  const stock = Array.from({ length: PRODUCTS }, (_, i) => ({ product_id: i + 1, available: work.int(0, 6) * 10 }));
  const workload = Array.from({ length: opts.orders }, () => {
    const n = work.int(1, 3);
    const products = new Set<number>();
    while (products.size < n) products.add(work.int(1, PRODUCTS));
    return { user_id: work.int(1, USERS), items: [...products].map((product_id) => ({ product_id, quantity: work.int(1, 2) })) };
  });
  const configs = new Map<ModuleName, unknown>();
  for (const name of MODULE_ORDER) {
    const m = MODULES[name] as ShopModule;
    const raw = loadModuleConfig(name, m.configSchema, CONFIG_DIR, {}) as Record<string, unknown>;
    const overrides: Record<string, unknown> =
      name === "registry"
        ? { saga_deadline_seconds: SAGA_DEADLINE_SECONDS, max_pending_orders: 0 }
        : name === "wallet"
          ? { wallets: balances }
          : { stock };
    configs.set(name, m.configSchema.parse({ ...raw, ...overrides }));
  }
  for (const name of MODULE_ORDER) await base.migrate(name, (MODULES[name] as ShopModule).migrationsFolder);

  // --- the broker ---
  const publishFate = (records: BusRecord[]): PublishFate => {
    const what = records.map(describeRecord).join(", ");
    if (injecting && sched.chance(0.02)) {
      fault("publish-failed", `publish of ${what}`);
      return "fail";
    }
    if (injecting && sched.chance(0.02)) {
      fault("publish-ack-lost", `publish of ${what} written, acknowledgement lost`);
      return "ack-lost";
    }
    trace(`publish ${what}`);
    return "ok";
  };
  const broker = new SimBroker(PARTITIONS, publishFate);
  let inFlightDeliveries = 0;

  // --- incarnations ---
  const boot = async (): Promise<Incarnation> => {
    const inc: Incarnation = { epoch: broker.epoch, dead: false, modules: new Map() };
    current = inc;
    const db = gated(inc);
    const bus = broker.busFor(inc.epoch);
    const siblings: Partial<Record<ModuleName, string>> = {};
    const was = injecting;
    injecting = false; // a start is not where faults are drawn (the restart itself is the fault)
    try {
      for (const name of MODULE_ORDER) {
        const m = MODULES[name] as ShopModule;
        const log = traceLog((text) => inc.dead || trace(text), name);
        inc.modules.set(name, await settle(env, m.init({ config: configs.get(name) as z.infer<typeof m.configSchema>, db, bus, log, siblings, signing: null, metrics: new Registry() })));
      }
      await bus.start();
      for (const r of inc.modules.values()) await settle(env, r.start());
    } finally {
      injecting = was;
    }
    return inc;
  };
  const crash = async (why: string) => {
    trace(`CRASH (${why}): in-memory state dropped, open transaction rolled back, unacknowledged deliveries will come again`);
    if (current) current.dead = true;
    broker.crash();
    armed = null;
    inFlightDeliveries = 0;
    env.clearAll();
    await env.idle();
    env.clearAll(); // timers the dying code set on its way out
    crashRequested = null;
    trace(`RESTART incarnation ${broker.epoch}`);
    await boot();
  };

  // --- steps ---
  const requests = new Set<Promise<void>>();
  let nextOrder = 0;
  const orderIds: string[] = [];
  /** The order each request created, to name it on the request's line. */
  const requestOrder = new Map<number, string>();
  /** Requests that failed (5xx, an error, a connection the crash dropped), to send again with the same Idempotency-Key. */
  const retries: { i: number; attempt: number }[] = [];
  /** Client-side check: a key's answers all name one order. */
  const clientViolations: string[] = [];
  const placeOrder = (i: number, attempt: number) => {
    const body = workload[i] as (typeof workload)[number];
    const inc = current as Incarnation;
    const router = (inc.modules.get("registry") as RunningModule).router;
    const name = `request ${i + 1}${attempt > 1 ? ` (attempt ${attempt})` : ""}`;
    trace(`${name}: POST /orders user ${body.user_id} ${body.items.map((it) => `${it.quantity}x product ${it.product_id}`).join(", ")}`);
    const retry = () => {
      if (attempt < 3) retries.push({ i, attempt: attempt + 1 });
    };
    const p = (async () => {
      try {
        const res = await router.request("/orders", {
          method: "POST",
          headers: { "content-type": "application/json", "idempotency-key": `sim-request-${i + 1}` },
          body: JSON.stringify(body),
        });
        const text = await res.text();
        if (inc.dead) {
          trace(`${name}: no answer (the process died)`);
          return retry();
        }
        const id = res.status === 201 || res.status === 200 ? (JSON.parse(text) as { id: string }).id : null;
        if (id) {
          const earlier = requestOrder.get(i + 1);
          if (earlier && earlier !== id) clientViolations.push(`client: request ${i + 1} was answered with two orders, order ${earlier} and order ${id}, for one Idempotency-Key`);
          orderIds.push(id);
          requestOrder.set(i + 1, id);
        }
        const replayed = res.headers.get("idempotent-replayed") === "true" ? " (replayed)" : "";
        trace(`${name}: ${res.status}${id ? ` ${id}${replayed}` : ` ${text.slice(0, 120)}`}`);
        if (res.status >= 500) retry();
      } catch (err) {
        trace(`${name}: failed: ${(err as Error).message}`);
        retry();
      }
    })().finally(() => requests.delete(p));
    requests.add(p);
  };

  const deliver = (lane: Lane) => {
    const handler = broker.handler(lane.group);
    if (!handler) return;
    const backlog = broker.backlog(lane);
    const n = Math.min(backlog.length, sched.int(1, sched.chance(0.3) ? 20 : 3));
    const batch = backlog.slice(0, n);
    const from = lane.committed;
    const epoch = broker.epoch;
    const inc = current as Incarnation;
    const where = `${lane.group} <- ${lane.topic}[${lane.partition}]@${from}`;
    trace(`deliver ${where}: ${batch.map(describeRecord).join(", ")}`);
    lane.busy = true;
    inFlightDeliveries += 1;
    // Planted bug: an at-most-once consumer, whose offset moves before the batch is applied.
    if (opts.plant === "ack-before-apply") lane.committed = from + batch.length;
    const dedupeOff = opts.plant === "no-inbox-dedupe" ? forgetInbox(base, lane.group, batch) : Promise.resolve();
    void dedupeOff
      .then(() => handler(batch))
      .then(
        (done) => {
          if (epoch !== broker.epoch || inc.dead) return; // a dead process acknowledges nothing
          inFlightDeliveries -= 1;
          lane.busy = false;
          if (injecting && done > 0 && sched.chance(0.01)) {
            fault("crash-before-ack", `${where}: ${done} applied and committed, the process dies before acknowledging`);
            crashRequested = "crash between commit and acknowledgement";
            return;
          }
          if (injecting && done > 0 && sched.chance(0.05)) {
            fault("ack-lost", `${where}: ${done} applied, acknowledgement lost (they will come again)`);
            return;
          }
          if (opts.plant !== "ack-before-apply") lane.committed = from + done;
          trace(`ack ${where}: ${done} of ${batch.length}`);
        },
        (err: Error) => {
          if (epoch !== broker.epoch || inc.dead) return;
          inFlightDeliveries -= 1;
          lane.busy = false;
          trace(`nack ${where}: handler threw: ${err.message}`);
        },
      );
  };

  /** Fires the timers due by `to`, in order, letting each settle; then leaves the clock at `to`. */
  const runTimersUntil = async (to: number) => {
    for (;;) {
      const due = env.nextDue();
      if (due === null || due > to || crashRequested) break;
      env.advanceTo(due);
      env.fireOne();
      await env.idle();
    }
    if (!crashRequested) env.advanceTo(to);
  };

  const step = async (settling: boolean) => {
    steps += 1;
    env.advanceTo(env.now() + sched.int(0, 3));
    const lanes = broker.deliverable();
    const canOrder = !settling && (nextOrder < workload.length || retries.length > 0);
    const weights = [
      canOrder ? 3 : 0, // place an order
      lanes.length > 0 ? 6 : 0, // deliver
      2, // let time pass
      injecting ? 0.03 : 0, // crash while idle
      injecting && !armed ? 0.5 : 0, // arm a database fault
    ];
    switch (sched.weighted(weights)) {
      case 0: {
        // A failed request is sent again a while later (the client's retry), or the next new one.
        const again = retries.length > 0 && (nextOrder >= workload.length || sched.chance(0.3)) ? retries.shift() : undefined;
        if (again) placeOrder(again.i, again.attempt);
        else placeOrder(nextOrder++, 1);
        break;
      }
      case 1:
        deliver(sched.pick(lanes));
        break;
      case 2: {
        const next = env.nextDue();
        if (injecting && sched.chance(0.03)) {
          const jump = sched.int(1000, SAGA_DEADLINE_SECONDS * 1500);
          fault("time-jump", `${(jump / 1000).toFixed(1)}s pass (a stalled process or a slow network)`);
          await runTimersUntil(env.now() + jump);
        } else {
          await runTimersUntil(next !== null && (lanes.length === 0 || sched.chance(0.5)) ? Math.max(next, env.now()) : env.now() + sched.int(1, 200));
        }
        break;
      }
      case 3:
        fault("crash-idle", "the process dies between steps");
        crashRequested = "crash while idle";
        break;
      case 4: {
        const kind = sched.pick(ARMED_FAULTS);
        // Statements are counted for the others, units of work (transactions, one-statement writes) for a lost answer.
        armed = { kind, countdown: sched.int(1, kind === "commit-answer-lost" ? 5 : 40) };
        trace(`armed ${kind} in ${armed.countdown}`);
        break;
      }
    }
    // Mostly one step at a time; sometimes the next step starts while this one's work is in
    // flight, so their statements interleave (in an order the seed still fixes).
    if (settling || !sched.chance(0.25)) await env.idle();
    if (crashRequested) await crash(crashRequested);
  };

  // --- the run ---
  trace(`seed ${opts.seed}, ${opts.orders} orders, faults ${faultsOn ? "on" : "off"}${opts.plant ? `, planted bug: ${opts.plant}` : ""}`);
  trace(`balances ${balances.map((b) => `user ${b.user_id}: ${b.balance_cents}`).join(", ")}`);
  trace(`stock ${stock.map((s) => `product ${s.product_id}: ${s.available}`).join(", ")}`);
  await boot();
  const maxSteps = 100 * opts.orders + 10_000;
  while (nextOrder < workload.length || retries.length > 0 || requests.size > 0) {
    if (steps > maxSteps) throw new Error(`simulator: seed ${opts.seed} made no progress in ${maxSteps} steps (a request never answered)`);
    await step(false);
  }
  // Settle: no more faults; deliver everything and let the deadline pass, until nothing is left to do.
  injecting = false;
  armed = null;
  trace("settle: faults off");
  const settleUntil = env.now() + 10 * 60_000;
  let quiet = 0;
  while (env.now() < settleUntil) {
    await step(true);
    if (broker.deliverable().length > 0 || inFlightDeliveries > 0 || requests.size > 0) {
      quiet = 0;
      continue;
    }
    if (++quiet % 20 === 0 && (await quiescent(base))) break;
  }
  // Past every deadline the audit checks, with the relays' marks written.
  await runTimersUntil(env.now() + 2 * 60_000);
  await env.idle();
  trace("audit");

  const inc = current as unknown as Incarnation;
  const report = <M extends keyof AuditReports>(m: M) => async (): Promise<AuditReports[M]> => {
    const res = await (inc.modules.get(m) as RunningModule).router.request("/admin/audit/report");
    const body: unknown = await res.json();
    return (AUDIT_REPORT_SCHEMAS[m] as unknown as z.ZodType<AuditReports[M]>).parse(body);
  };
  const sources: ReportSources = { registry: report("registry"), wallet: report("wallet"), storage: report("storage") };
  const audit = await auditShop(sources);
  audit.violations.push(...clientViolations, ...(await unkeyedOrders(base)));
  const outcomes = await orderOutcomes(base);
  trace(`outcomes ${Object.entries(outcomes).map(([k, v]) => `${k} ${v}`).join(", ")}`);
  for (const v of audit.violations) trace(`VIOLATION ${v}`);
  await base.close();

  // Stable labels: orders (and then other ids) numbered in order of first appearance.
  const orderSet = new Set(orderIds);
  for (const line of lines) for (const m of line.matchAll(/order ([0-9a-f-]{36})/g)) orderSet.add(m[1] as string);
  const labels = new Map<string, string>();
  let orderN = 0;
  let msgN = 0;
  const label = (text: string) =>
    text.replace(LABELLED, (_, id: string) => {
      let l = labels.get(id);
      if (!l) {
        l = orderSet.has(id) ? `order#${++orderN}` : `msg#${++msgN}`;
        labels.set(id, l);
      }
      return l;
    });
  const named = lines.map((l) => {
    const m = l.match(/ request (\d+)(?: \(attempt \d+\))?: POST /);
    const id = m ? requestOrder.get(Number(m[1])) : undefined;
    return id ? `${l} (order ${id})` : l;
  });
  const labelled = named.map(label);
  const violations = audit.violations.map(label);
  const text = `${labelled.join("\n")}\n`;
  const hash = new Bun.CryptoHasher("sha256").update(text).digest("hex");
  let firstViolatingOrder: SimResult["firstViolatingOrder"] = null;
  for (const v of violations) {
    const m = v.match(/order#\d+/);
    if (!m) continue;
    const tag = m[0];
    const re = new RegExp(`${tag}(?!\\d)`);
    firstViolatingOrder = { label: tag, lines: labelled.filter((l) => re.test(l)) };
    break;
  }
  return {
    seed: opts.seed,
    orders: opts.orders,
    trace: text,
    hash,
    violations,
    faults,
    outcomes,
    steps,
    simulatedSeconds: Math.round((env.now() - START) / 1000),
    firstViolatingOrder,
  };
}

/** Waits for `p`, letting simulated time pass when it waits for a timer. */
async function settle<T>(env: VirtualEnv, p: Promise<T>): Promise<T> {
  let done = false;
  let value: T | undefined;
  let error: unknown = null;
  let failed = false;
  p.then(
    (v) => ((done = true), (value = v)),
    (e: unknown) => ((done = true), (failed = true), (error = e)),
  );
  for (let i = 0; !done; i++) {
    await env.idle();
    if (done) break;
    if (i > 1000) throw new Error("simulator: a start never finished");
    const due = env.nextDue();
    if (due !== null) {
      env.advanceTo(due);
      env.fireOne();
    }
  }
  if (failed) throw error;
  return value as T;
}

/** A record as the trace shows it: its type, message id and order. */
function describeRecord(r: BusRecord): string {
  return `${r.headers["message-type"] ?? "?"} ${r.headers["message-id"] ?? "?"} (order ${r.key})`;
}

/** Planted bug: the group forgets the batch's message ids in its inbox before each delivery (no dedupe). */
async function forgetInbox(db: Database, group: string, batch: BusRecord[]): Promise<void> {
  const ids = batch.map((r) => r.headers["message-id"]).filter((id): id is string => typeof id === "string");
  if (ids.length === 0) return;
  const { sql } = await import("drizzle-orm");
  await db.autocommit((q) => q.execute(sql`delete from ${sql.identifier(group)}.inbox where message_id in (${sql.join(ids.map((id) => sql`${id}::uuid`), sql`, `)})`));
}

/** Nothing left to do: no unpublished outbox rows, no pending order. */
async function quiescent(db: Database): Promise<boolean> {
  const { sql } = await import("drizzle-orm");
  const rows = await db.read((q) =>
    q.execute<{ n: number }>(sql`select (
      (select count(*) from registry.outbox where state <> 'published') +
      (select count(*) from wallet.outbox where state <> 'published') +
      (select count(*) from storage.outbox where state <> 'published') +
      (select count(*) from registry.orders where status = 'pending'))::int as n`),
  );
  return Number((rows as unknown as { rows?: { n: number }[] }).rows?.[0]?.n ?? (rows as unknown as { n: number }[])[0]?.n) === 0;
}

/** Every request carries an Idempotency-Key: an order no key names was placed twice for one key. */
async function unkeyedOrders(db: Database): Promise<string[]> {
  const { sql } = await import("drizzle-orm");
  const res = await db.read((q) =>
    q.execute<{ id: string }>(sql`select o.id from registry.orders o where not exists (select 1 from registry.idempotency_keys k where k.order_id = o.id) order by o.created_at, o.id`),
  );
  const rows = ((res as unknown as { rows?: { id: string }[] }).rows ?? (res as unknown as { id: string }[])) as { id: string }[];
  return rows.map((r) => `registry: order ${r.id} is named by no Idempotency-Key (a retried request placed a second order)`);
}

/** Orders by status. */
async function orderOutcomes(db: Database): Promise<Record<string, number>> {
  const { sql } = await import("drizzle-orm");
  const res = await db.read((q) => q.execute<{ status: string; n: number }>(sql`select status, count(*)::int as n from registry.orders group by status order by status`));
  const rows = ((res as unknown as { rows?: { status: string; n: number }[] }).rows ?? (res as unknown as { status: string; n: number }[])) as { status: string; n: number }[];
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

/** A logger that keeps nothing. */
function silentLog(): Logger {
  const log: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => log };
  return log;
}

/** A module logger whose saga lines (info and up, with an order) go into the trace. */
function traceLog(trace: (text: string) => unknown, component: string): Logger {
  const line = (level: string, msg: string, fields?: LogFields) => {
    if (msg === "listening" || msg === "PGlite open") return;
    const f = fields ?? {};
    const parts = [`log ${level} ${component}: ${msg}`];
    for (const k of ["step", "outcome", "reason", "order_id", "message_id"]) if (f[k] !== undefined) parts.push(k === "order_id" ? `order ${String(f[k])}` : `${k}=${String(f[k])}`);
    if (f.err instanceof Error) parts.push(`err=${f.err.message.slice(0, 160)}`);
    trace(parts.join(" "));
  };
  const make = (c: string): Logger => ({
    debug() {},
    info: (m, f) => line("info", m, f),
    warn: (m, f) => line("warn", m, f),
    error: (m, f) => line("error", m, f),
    child: (name) => make(`${c}.${name}`),
  });
  return make(component);
}
