/**
 * The fault simulator: the whole shop (registry, wallet, storage) in this process over a
 * simulated broker, one step at a time, every choice drawn from one seed: which order is placed,
 * which partition delivers next and how much, lost acknowledgements (redeliveries), failed
 * publishes, database errors, crashes (idle, between a commit and its acknowledgement, between two
 * statements of a transaction) and how far simulated time jumps (deadlines, sweepers, relay polls).
 * At the end the shop's audit runs. The same seed gives the same trace, byte for byte.
 * Each job (database, process, client, delivery, scheduler, report) is a file of its own in sim/;
 * docs/simulator.md ("Where the code is") lists them.
 */
import { SimBroker } from "./broker";
import { OrderClient } from "./client";
import { Delivery, type PlantedBug, publishFate } from "./delivery";
import { Faults } from "./faults";
import { FaultyDatabase } from "./faulty-db";
import { type Incarnation, migrateShop, moduleConfigs, ShopProcess } from "./processes";
import { Random } from "./random";
import { auditRun, type SimResult, simResult } from "./report";
import { Scheduler } from "./scheduler";
import { Trace } from "./trace";
import { installVirtualEnv, type VirtualEnv } from "./virtual-env";
import { drawWorkload, type Workload } from "./workload";

export { PLANTED_BUGS, type PlantedBug } from "./delivery";
export { FAULT_KINDS, type FaultKind } from "./faults";
export type { SimResult } from "./report";

/** How one run goes. */
export interface SimOptions {
  seed: number;
  orders: number;
  /** Fault injection on (default); off: only scheduling (order, delays, time) is drawn. */
  faults?: boolean;
  plant?: PlantedBug;
}

const START = Date.UTC(2030, 0, 1);
const PARTITIONS = 3;

/** Runs one seed. */
export async function simulate(opts: SimOptions): Promise<SimResult> {
  const random = new Random(opts.seed);
  // Independent streams: what the modules draw (ids) does not shift the scheduler's choices.
  const idRandom = random.fork();
  const workRandom = random.fork();
  const sched = random.fork();
  const env = installVirtualEnv(START, idRandom);
  // Hono's default error handler (a module router serves without the HTTP shell here) prints to console.error.
  const consoleError = console.error;
  console.error = () => {};
  try {
    return await run(opts, env, workRandom, sched);
  } finally {
    console.error = consoleError;
    env.uninstall();
  }
}

/** One run inside the installed environment: the pieces wired, the workload placed under faults, then settled and audited. */
async function run(opts: SimOptions, env: VirtualEnv, work: Random, sched: Random): Promise<SimResult> {
  const trace = new Trace(env, START);
  const faults = new Faults(trace, opts.faults !== false);
  const db = await FaultyDatabase.open(faults);
  const workload = drawWorkload(work, opts.orders);
  const configs = moduleConfigs(workload);
  await migrateShop(db);
  const broker = new SimBroker(PARTITIONS, (records) => publishFate(records, sched, faults, trace));
  const delivery = new Delivery({ broker, sched, faults, trace, db: db.base, plant: opts.plant });
  const process = new ShopProcess({ env, db, broker, faults, trace, configs });
  const client = new OrderClient(workload.orders, trace);
  const scheduler = new Scheduler({ env, sched, broker, faults, trace, process, client, delivery });

  traceStart(trace, opts, workload);
  await process.boot();
  await scheduler.placeWorkload(opts.seed, opts.orders);
  await scheduler.settle(db.base);
  trace.line("audit");
  const { violations, outcomes } = await auditRun(process.current as Incarnation, db.base, client.violations, trace);
  await db.base.close();
  return simResult({
    seed: opts.seed,
    orders: opts.orders,
    lines: trace.lines,
    orderIds: client.orderIds,
    requestOrder: client.requestOrder,
    violations,
    faults: faults.counts,
    outcomes,
    steps: scheduler.steps,
    simulatedSeconds: Math.round((env.now() - START) / 1000),
  });
}

/** The trace's first lines: the run's options and the seeded balances and stock. */
function traceStart(trace: Trace, opts: SimOptions, workload: Workload): void {
  trace.line(
    `seed ${opts.seed}, ${opts.orders} orders, faults ${opts.faults !== false ? "on" : "off"}${opts.plant ? `, planted bug: ${opts.plant}` : ""}`,
  );
  trace.line(`balances ${workload.balances.map((b) => `user ${b.user_id}: ${b.balance_cents}`).join(", ")}`);
  trace.line(`stock ${workload.stock.map((s) => `product ${s.product_id}: ${s.available}`).join(", ")}`);
}
