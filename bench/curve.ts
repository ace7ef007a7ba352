/**
 * The cost curve of one topology: open-loop arrivals at fixed rates and one order at a time,
 * each with the shop's CPU over the posting window (idle work included: what a process burns
 * while nothing arrives is part of a trickle's cost), the shop's own counts over that window,
 * and POST-to-final latency from the shop's own timestamps (created_at to updated_at once final).
 * No poller runs while posting at a rate: orders are followed to their end afterwards.
 */
import { type Counts, countsSince, scrapeCounts } from "./counters";
import type { RunningShop } from "./launch";
import { postAtRate } from "./load";
import type { OrderTracker } from "./order-tracker";
import { type PhaseResult, percentile, summarise } from "./phase";
import { cpuSince, cpuSnapshot, type Pids, runtimeMsSince } from "./proc-stats";

/** One point of the curve. */
export interface CurvePoint {
  /** "one at a time", "10/s", "0.5 × saturation", "saturation". */
  label: string;
  /** Orders/s offered (accepted/s for saturation and one at a time). */
  offered: number;
  finalPerSecond: number;
  /** Orders final in the window: the divisor of every per-order figure. */
  finals: number;
  p50: number;
  p99: number;
  /** CPU ms per final order, per process and in total (one at a time: the status reads' measured cost is taken out in the report). */
  cpuMsPerOrderByProcess: Record<string, number>;
  cpuMsPerOrder: number;
  /** Of cpuMsPerOrder, what the shop's runtime threads (JIT, GC, allocator) spent, measured per thread. */
  runtimeMsPerOrder: number;
  /** The shop's counts over the window (null when they could not be read). */
  counts: Counts | null;
  /** One at a time: `GET /orders/{id}` status reads sent to see each order final. */
  statusReads: number;
  stuck: number;
  phase: PhaseResult | null;
}

/** A point from a posting phase and the counts over its window. */
export function pointOf(label: string, offered: number, phase: PhaseResult, counts: Counts | null): CurvePoint {
  return {
    label,
    offered,
    finalPerSecond: phase.finalPerSecond,
    finals: phase.finals,
    p50: phase.p50,
    p99: phase.p99,
    cpuMsPerOrderByProcess: phase.cpuMsPerOrderByProcess,
    cpuMsPerOrder: phase.cpuMsPerOrder,
    runtimeMsPerOrder: phase.runtimeMsPerOrder,
    counts,
    statusReads: 0,
    stuck: phase.stuck,
    phase,
  };
}

/** Scrapes the counts, or null if the shop does not answer them (never throws). */
export async function tryCounts(shop: RunningShop): Promise<Counts | null> {
  try {
    return await scrapeCounts(shop);
  } catch {
    return null;
  }
}

/** Open-loop arrivals at `rate` for `seconds`, no poller meanwhile; then `settle` follows the orders to their end. */
export async function ratePoint(
  label: string,
  shop: RunningShop,
  tracker: OrderTracker,
  pids: Pids,
  users: number[],
  rate: number,
  seconds: number,
  settle: () => Promise<void>,
): Promise<CurvePoint> {
  const before = await tryCounts(shop);
  const run = await postAtRate(shop.urls, tracker, pids, users, rate, seconds);
  const after = await tryCounts(shop);
  await settle();
  return pointOf(label, rate, summarise(run, tracker), before && after ? countsSince(before, after) : null);
}

/** An order as GET /orders/{id} answers it (the fields read here). */
interface OrderAnswer {
  status: string;
  created_at: string;
  updated_at: string;
}

/**
 * One order at a time for `seconds`: POST, then `GET /orders/{id}` every `pollMs` until it is
 * final, then the next. Latency from the shop's timestamps, so the poll's period does not show
 * in it; the reads' CPU does (taken out in the report at their cost measured alone).
 */
export async function oneAtATime(shop: RunningShop, pids: Pids, users: number[], seconds: number, pollMs: number): Promise<CurvePoint> {
  const registry = shop.urls.registry;
  const before = await tryCounts(shop);
  const cpu = cpuSnapshot(pids);
  const started = performance.now();
  const latencies: number[] = [];
  let reads = 0;
  let stuck = 0;
  for (let i = 0; performance.now() - started < seconds * 1000; i++) {
    const res = await fetch(`${registry}/orders`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ user_id: users[i % users.length], items: [{ product_id: (i % 100) + 1, quantity: 1 }] }),
    });
    const body = (await res.json()) as { id?: string };
    if (res.status !== 201 || !body.id) throw new Error(`one at a time: POST /orders answered ${res.status}`);
    const giveUp = performance.now() + 30_000;
    for (;;) {
      await Bun.sleep(pollMs);
      reads += 1;
      const o = (await (await fetch(`${registry}/orders/${body.id}`)).json()) as OrderAnswer;
      if (o.status !== "pending") {
        latencies.push(Date.parse(o.updated_at) - Date.parse(o.created_at));
        break;
      }
      if (performance.now() > giveUp) {
        stuck += 1;
        break;
      }
    }
  }
  const windowSeconds = (performance.now() - started) / 1000;
  const usage = cpuSince(cpu, pids);
  const runtimeMs = runtimeMsSince(cpu);
  const after = await tryCounts(shop);
  latencies.sort((a, b) => a - b);
  const finals = latencies.length;
  const byProcess = Object.fromEntries(Object.entries(usage).map(([name, pct]) => [name, (pct * 10 * windowSeconds) / finals]));
  return {
    label: "one at a time",
    offered: finals / windowSeconds,
    finalPerSecond: finals / windowSeconds,
    finals,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    cpuMsPerOrderByProcess: byProcess,
    cpuMsPerOrder: Object.values(byProcess).reduce((a, b) => a + b, 0),
    runtimeMsPerOrder: runtimeMs / finals,
    counts: before && after ? countsSince(before, after) : null,
    statusReads: reads,
    stuck,
    phase: null,
  };
}
