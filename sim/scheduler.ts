/**
 * The scheduler: drives the run one step at a time, each step drawn from the seed (place an
 * order, deliver a batch, let time pass, crash while idle, arm a database fault), until the
 * workload is placed; then settles the run with faults off until nothing is left to do.
 */
import { sql } from "drizzle-orm";
import type { Database } from "../src/db/database";
import { rowsOf } from "../src/db/rows";
import type { Lane, SimBroker } from "./broker";
import type { OrderClient } from "./client";
import type { Delivery } from "./delivery";
import { ARMED_FAULTS, type Faults } from "./faults";
import { type Incarnation, SAGA_DEADLINE_SECONDS, type ShopProcess } from "./processes";
import type { Random } from "./random";
import type { Trace } from "./trace";
import type { VirtualEnv } from "./virtual-env";

/** The pieces the scheduler drives. */
interface SchedulerDeps {
  env: VirtualEnv;
  /** The scheduler's own stream of the seed. */
  sched: Random;
  broker: SimBroker;
  faults: Faults;
  trace: Trace;
  process: ShopProcess;
  client: OrderClient;
  delivery: Delivery;
}

/** Steps of one run, drawn from the seed. */
export class Scheduler {
  /** Steps taken so far. */
  steps = 0;

  constructor(private readonly deps: SchedulerDeps) {}

  /** Steps until every order of the workload is placed and answered; throws when that takes absurdly long. */
  async placeWorkload(seed: number, orders: number): Promise<void> {
    const { client } = this.deps;
    const maxSteps = 100 * orders + 10_000;
    while (client.hasWork() || client.inFlight.size > 0) {
      if (this.steps > maxSteps)
        throw new Error(`simulator: seed ${seed} made no progress in ${maxSteps} steps (a request never answered)`);
      await this.step(false);
    }
  }

  /**
   * Settles the run with faults off: steps until nothing is in flight, no order is pending and
   * every outbox row is published (or ten simulated minutes), then moves past every deadline the
   * audit checks, with the relays' marks written.
   */
  async settle(db: Database): Promise<void> {
    const { env, broker, faults, trace, client, delivery } = this.deps;
    faults.stop();
    trace.line("settle: faults off");
    const settleUntil = env.now() + 10 * 60_000;
    let quiet = 0;
    while (env.now() < settleUntil) {
      await this.step(true);
      if (broker.deliverable().length > 0 || delivery.inFlight > 0 || client.inFlight.size > 0) {
        quiet = 0;
        continue;
      }
      if (++quiet % 20 === 0 && (await quiescent(db))) break;
    }
    await this.runTimersUntil(env.now() + 2 * 60_000);
    await env.idle();
  }

  /** One step: the clock moves 0-3 ms, then one action is drawn; a crash it asked for happens at the end. */
  private async step(settling: boolean): Promise<void> {
    const { env, sched, broker, faults, client, delivery, process } = this.deps;
    this.steps += 1;
    env.advanceTo(env.now() + sched.int(0, 3));
    const lanes = broker.deliverable();
    const canOrder = !settling && client.hasWork();
    const weights = [
      canOrder ? 3 : 0, // place an order
      lanes.length > 0 ? 6 : 0, // deliver
      2, // let time pass
      faults.injecting ? 0.03 : 0, // crash while idle
      faults.injecting && !faults.armed ? 0.5 : 0, // arm a database fault
    ];
    switch (sched.weighted(weights)) {
      case 0:
        client.placeOne(sched, process.current as Incarnation);
        break;
      case 1:
        delivery.deliver(sched.pick(lanes), process.current as Incarnation);
        break;
      case 2:
        await this.passTime(lanes);
        break;
      case 3:
        faults.record("crash-idle", "the process dies between steps");
        faults.crashRequested = "crash while idle";
        break;
      case 4:
        this.armFault();
        break;
    }
    // Mostly one step at a time; sometimes the next step starts while this one's work is in
    // flight, so their statements interleave (in an order the seed still fixes).
    if (settling || !sched.chance(0.25)) await env.idle();
    if (faults.crashRequested) await this.crash(faults.crashRequested);
  }

  /**
   * Lets time pass: to the next timer, a few ms on, or (a fault) 1-45 s at once. Returns
   * runTimersUntil's own promise, not an async wrapper's: an extra await would let work in
   * flight run further before the step's next draw, and change the trace.
   */
  private passTime(lanes: Lane[]): Promise<void> {
    const { env, sched, faults } = this.deps;
    const next = env.nextDue();
    if (faults.injecting && sched.chance(0.03)) {
      const jump = sched.int(1000, SAGA_DEADLINE_SECONDS * 1500);
      faults.record("time-jump", `${(jump / 1000).toFixed(1)}s pass (a stalled process or a slow network)`);
      return this.runTimersUntil(env.now() + jump);
    }
    return this.runTimersUntil(
      next !== null && (lanes.length === 0 || sched.chance(0.5)) ? Math.max(next, env.now()) : env.now() + sched.int(1, 200),
    );
  }

  /** Fires the timers due by `to`, in order, letting each settle; then leaves the clock at `to`. A crash asked for stops it. */
  private async runTimersUntil(to: number): Promise<void> {
    const { env, faults } = this.deps;
    for (;;) {
      const due = env.nextDue();
      if (due === null || due > to || faults.crashRequested) break;
      env.advanceTo(due);
      env.fireOne();
      await env.idle();
    }
    if (!faults.crashRequested) env.advanceTo(to);
  }

  /** Arms a database fault to fire a few statements (or units of work) from now, wherever the code is then. */
  private armFault(): void {
    const { sched, faults, trace } = this.deps;
    const kind = sched.pick(ARMED_FAULTS);
    // Statements are counted for the others, units of work (transactions, one-statement writes) for a lost answer.
    const armed = { kind, countdown: sched.int(1, kind === "commit-answer-lost" ? 5 : 40) };
    faults.armed = armed;
    trace.line(`armed ${kind} in ${armed.countdown}`);
  }

  /** A crash loses the deliveries in flight, then the process dies and starts again (no extra await, as in passTime). */
  private crash(why: string): Promise<void> {
    this.deps.delivery.forgetInFlight();
    return this.deps.process.crash(why);
  }
}

/** Nothing left to do: no unpublished outbox rows, no pending order. */
async function quiescent(db: Database): Promise<boolean> {
  const res = await db.read((q) =>
    q.execute(sql`select (
      (select count(*) from registry.outbox where state <> 'published') +
      (select count(*) from wallet.outbox where state <> 'published') +
      (select count(*) from storage.outbox where state <> 'published') +
      (select count(*) from registry.orders where status = 'pending'))::int as n`),
  );
  return Number(rowsOf(res)[0]?.n) === 0;
}
