/**
 * The simulated process and its life: the shop's modules (registry, wallet, storage), each with
 * its real init() and start(), over the run's database and broker. A crash is kill -9 (nothing
 * runs a clean stop()); the restart starts every module again over the same database and broker.
 */
import { join } from "node:path";
import type { z } from "zod";
import { MODULES } from "../src/app/modules";
import type { Bus } from "../src/bus/bus";
import { loadModuleConfig, type ModuleName } from "../src/config";
import type { Database } from "../src/db/database";
import { Registry } from "../src/metrics/registry";
import type { RunningModule, ShopModule } from "../src/module";
import type { SimBroker } from "./broker";
import type { Faults } from "./faults";
import type { FaultyDatabase } from "./faulty-db";
import { type Trace, traceLog } from "./trace";
import type { VirtualEnv } from "./virtual-env";
import type { Workload } from "./workload";

const MODULE_ORDER: ModuleName[] = ["registry", "wallet", "storage"];
const CONFIG_DIR = join(import.meta.dir, "../config");
/** The saga's deadline in a run: short, so that many orders race it. */
export const SAGA_DEADLINE_SECONDS = 30;

/** One incarnation of the process: its modules over a gate that closes when it crashes. */
export interface Incarnation {
  epoch: number;
  dead: boolean;
  modules: Map<ModuleName, RunningModule>;
}

/** Each module's parsed config: its YAML, with the seeded balances and stock and the run's saga deadline. */
export function moduleConfigs(workload: Workload): Map<ModuleName, unknown> {
  const configs = new Map<ModuleName, unknown>();
  for (const name of MODULE_ORDER) {
    const m = MODULES[name] as ShopModule;
    const raw = loadModuleConfig(name, m.configSchema, CONFIG_DIR, {}) as Record<string, unknown>;
    const overrides: Record<string, unknown> =
      name === "registry"
        ? { saga_deadline_seconds: SAGA_DEADLINE_SECONDS, max_pending_orders: 0 }
        : name === "wallet"
          ? { wallets: workload.balances }
          : { stock: workload.stock };
    configs.set(name, m.configSchema.parse({ ...raw, ...overrides }));
  }
  return configs;
}

/** Applies every module's migrations to the run's database. */
export async function migrateShop(db: FaultyDatabase): Promise<void> {
  for (const name of MODULE_ORDER) await db.base.migrate(name, (MODULES[name] as ShopModule).migrationsFolder);
}

/** What the process runs over, shared with the rest of the run. */
interface ProcessDeps {
  env: VirtualEnv;
  db: FaultyDatabase;
  broker: SimBroker;
  faults: Faults;
  trace: Trace;
  configs: Map<ModuleName, unknown>;
}

/** The one simulated process: the incarnation alive now, its start, and its crash and restart. */
export class ShopProcess {
  /** The incarnation alive now (null before the first boot). */
  current: Incarnation | null = null;

  constructor(private readonly deps: ProcessDeps) {}

  /** Starts a new incarnation: every module initialised, the bus started, then every module started. */
  async boot(): Promise<Incarnation> {
    const { env, db, broker, faults } = this.deps;
    const inc: Incarnation = { epoch: broker.epoch, dead: false, modules: new Map() };
    this.current = inc;
    const handle = db.handleFor(inc);
    const bus = broker.busFor(inc.epoch);
    const siblings: Partial<Record<ModuleName, string>> = {};
    const was = faults.injecting;
    faults.injecting = false; // a start is not where faults are drawn (the restart itself is the fault)
    try {
      for (const name of MODULE_ORDER) inc.modules.set(name, await settle(env, this.init(name, inc, handle, bus, siblings)));
      await bus.start();
      for (const r of inc.modules.values()) await settle(env, r.start());
    } finally {
      faults.injecting = was;
    }
    return inc;
  }

  /**
   * kill -9, then a restart: the incarnation's handle and bus die, its timers and any armed fault
   * are dropped, committed rows and the broker's logs and offsets survive.
   */
  async crash(why: string): Promise<void> {
    const { env, broker, faults, trace } = this.deps;
    trace.line(`CRASH (${why}): in-memory state dropped, open transaction rolled back, unacknowledged deliveries will come again`);
    if (this.current) this.current.dead = true;
    broker.crash();
    faults.armed = null;
    env.clearAll();
    await env.idle();
    env.clearAll(); // timers the dying code set on its way out
    faults.crashRequested = null;
    trace.line(`RESTART incarnation ${broker.epoch}`);
    await this.boot();
  }

  /** Module `name` of `inc`, initialised (seeded, subscribed, routed) but not started. */
  private init(
    name: ModuleName,
    inc: Incarnation,
    db: Database,
    bus: Bus,
    siblings: Partial<Record<ModuleName, string>>,
  ): Promise<RunningModule> {
    const m = MODULES[name] as ShopModule;
    const log = traceLog((text) => inc.dead || this.deps.trace.line(text), name);
    return m.init({
      config: this.deps.configs.get(name) as z.infer<typeof m.configSchema>,
      db,
      bus,
      log,
      siblings,
      signing: null,
      metrics: new Registry(),
    });
  }
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
