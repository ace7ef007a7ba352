/** Everything measured for one topology: start time, idle CPU, GET /products, saga load, peak RSS, restart; spans when traced. */
import type { PostgresCluster } from "../test/support/postgres-cluster";
import { cleanUp, defer, depth } from "./cleanup";
import { countsSince } from "./counters";
import { type CurvePoint, oneAtATime, pointOf, ratePoint, tryCounts } from "./curve";
import { wrkRequestsPerSecond } from "./http-floor";
import { idleCpu, waitUntilQuiet } from "./idle-cpu";
import { launch, type RunningShop } from "./launch";
import { benchUsers, postAtSaturation, stockUp } from "./load";
import { measureUnitCosts, TRICKLE_CALLS, TRICKLE_PER_SECOND, type UnitCosts } from "./micro";
import { OrderTracker } from "./order-tracker";
import { type PhaseResult, summarise } from "./phase";
import { type CpuSnapshot, cpuSince, cpuSnapshot, type Pids, peakRssMb } from "./proc-stats";
import type { BenchSettings, Mode } from "./settings";
import type { SpanCounter } from "./span-counter";
import { prepareTopology } from "./topologies";

/** The figures of one topology. */
export interface ModeResult {
  mode: Mode;
  /** "" for this checkout, "baseline" for the other one (BENCH_BASELINE_*). */
  checkout: string;
  startFreshMs: number;
  startExistingMs: number;
  /** % of a core per process (and PostgreSQL's), no traffic. */
  idleCpu: Record<string, number>;
  /** VmHWM per process just before stopping, MiB. */
  peakRssMb: Record<string, number>;
  productsRps: number;
  /** The registry's GET /products body, for the bare server. */
  productsBody: string;
  saturation: PhaseResult;
  /** Offered orders/s in the half phase. */
  halfRate: number;
  half: PhaseResult;
  /** The cost curve: one at a time, the fixed rates, saturation (postgres-traced: 0.5 and saturation only). */
  curve: CurvePoint[];
  /** CPU of one unit of each kind, measured alone (null for postgres-traced). */
  units: UnitCosts | null;
  /** The order poller's failed rounds. */
  pollerErrors: number;
  /** warn/error log lines of the shop processes. */
  warnings: string[];
  /** Database statements per final order over the posting window (all processes, BEGIN/COMMIT included), per phase. */
  statementsPerOrder: { saturation: number; half: number };
  /** What the span counter received over both phases and their drains (traced topologies only). */
  spans: SpanFigures | null;
}

/** Spans of a traced topology, per order seen final in the saturation and half-rate phases (drains included). */
interface SpanFigures {
  perFinalOrder: number;
  /** Of those, the poller's `GET /orders` requests. */
  pollerPerFinalOrder: number;
  /** CPU of the span counter per final order, ms: its own process, among "other programs", not the shop's. */
  counterCpuMsPerOrder: number;
}

/**
 * Runs the whole sequence on one topology, with progress lines on stderr; stops everything it
 * started. `postmaster` is the cluster's pid: its CPU (backends included) is measured beside the
 * shop's in the modes that use PostgreSQL, as is the Kafka broker's.
 */
export async function measureMode(
  mode: Mode,
  cluster: PostgresCluster,
  postmaster: number,
  s: BenchSettings,
  cwd?: string,
): Promise<ModeResult> {
  const checkout = cwd ? "baseline" : "";
  const say = (msg: string) => console.error(`[${mode}${cwd ? " baseline" : ""}] ${msg}`);
  const mark = depth();
  try {
    const { specs, helpers, spanCounter } = await prepareTopology(mode, cluster, s);
    let shop: RunningShop = await launch(specs, s.profileDir ?? undefined, cwd);
    defer(`stop the ${mode} shop`, () => shop.stop());
    const startFreshMs = shop.startMs;
    say(`healthy after ${shop.startMs.toFixed(0)} ms (fresh data); idle window ${s.idleSeconds} s`);
    const watched = () => ({ ...shop.pids, ...helpers, ...(mode.startsWith("pglite") ? {} : { postgres: postmaster }) });
    await Bun.sleep(s.idleSettleSeconds * 1000);
    const idle = await idleCpu(watched(), s.idleSeconds * 1000);

    const registry = shop.urls.registry;
    const productsBody = await (await fetch(`${registry}/products`)).text();
    say(`wrk GET /products for ${s.wrkSeconds} s`);
    const productsRps = await wrkRequestsPerSecond(`${registry}/products`, s);

    const users = benchUsers(s.clients);
    await stockUp(shop.urls, users);
    const tracker = new OrderTracker(registry, s.pollMs, s.pollMaxRps);
    defer("stop the order poller", () => tracker.stop());
    // The poller runs only between phases, following the orders to their end: not in any CPU window.
    const settle = async () => {
      tracker.start();
      await drain(tracker, watched(), idle, s, say);
      await tracker.stop();
    };
    say(`saturation: ${s.clients} clients for ${s.seconds} s`);
    const spansFrom = spanWindowStart(spanCounter);
    let before = await tryCounts(shop);
    const satRun = await postAtSaturation(shop.urls, tracker, watched(), users, s.seconds);
    const satCounts = await tryCounts(shop);
    await settle();
    const saturation = summarise(satRun, tracker);
    const satPoint = pointOf(
      "saturation",
      saturation.acceptedPerSecond,
      saturation,
      before && satCounts ? countsSince(before, satCounts) : null,
    );
    const satStatements = saturation.finals > 0 ? (satPoint.counts?.statements ?? Number.NaN) / saturation.finals : Number.NaN;
    const sat = saturation.finalPerSecond;
    say(`saturation: ${sat.toFixed(1)} final/s`);

    const traced = mode === "postgres-traced";
    const rates: { label: string; rate: number }[] = (traced ? s.curveRates.filter((r) => r.ofSaturation === 0.5) : s.curveRates).map(
      (r) =>
        r.ofSaturation
          ? { label: `${r.ofSaturation} × saturation`, rate: Math.max(1, r.ofSaturation * sat) }
          : { label: `${r.perSecond}/s`, rate: r.perSecond ?? 1 },
    );
    const curve: CurvePoint[] = [];
    for (const { label, rate } of rates) {
      say(`${label}: ${rate.toFixed(1)} orders/s for ${s.curveSeconds} s`);
      const point = await ratePoint(label, shop, tracker, watched(), users, rate, s.curveSeconds, settle);
      say(
        `${label}: ${point.finalPerSecond.toFixed(1)} final/s, p50 ${point.p50.toFixed(0)} ms, ${point.cpuMsPerOrder.toFixed(1)} ms of CPU per order`,
      );
      curve.push(point);
    }
    const halfPoint = curve.find((p) => p.label.startsWith("0.5 ")) ?? curve[0];
    if (!halfPoint?.phase) throw new Error("BENCH_CURVE_RATES must include 0.5x (the half rate)");
    const half = halfPoint.phase;
    const halfRate = halfPoint.offered;
    const halfStatements = half.finals > 0 ? (halfPoint.counts?.statements ?? Number.NaN) / half.finals : Number.NaN;
    let units: UnitCosts | null = null;
    if (!traced) {
      say(`one at a time for ${s.sequentialSeconds} s (status read every ${s.sequentialPollMs} ms)`);
      const one = await oneAtATime(shop, watched(), users, s.sequentialSeconds, s.sequentialPollMs);
      say(`one at a time: ${one.finals} orders, p50 ${one.p50.toFixed(0)} ms`);
      curve.unshift(one);
      const anyOrder = satRun.accepted[0]?.id;
      if (anyOrder) {
        say(`unit costs: ${s.unitRequests} requests of each kind back to back, ${TRICKLE_CALLS} at ${TRICKLE_PER_SECOND}/s`);
        units = await measureUnitCosts(shop, watched(), anyOrder, s.unitRequests, s.idleSeconds);
      }
    }
    curve.push(satPoint);
    before = null;
    say(`statements per order: ${satStatements.toFixed(1)} at saturation, ${halfStatements.toFixed(1)} at half rate`);
    const spans = spansFrom ? await spanFigures(spansFrom, [saturation, half], say) : null;

    const peak = Object.fromEntries(Object.entries(shop.pids).map(([name, pid]) => [name, peakRssMb(pid)]));
    const warnings = shop.warnings();
    await shop.stop();
    shop = await launch(specs, undefined, cwd);
    say(`healthy after ${shop.startMs.toFixed(0)} ms (existing data)`);
    warnings.push(...shop.warnings());
    return {
      mode,
      checkout,
      startFreshMs,
      startExistingMs: shop.startMs,
      idleCpu: idle,
      peakRssMb: peak,
      productsRps,
      productsBody,
      saturation,
      halfRate,
      half,
      curve,
      units,
      pollerErrors: tracker.stats.errors,
      warnings,
      statementsPerOrder: { saturation: satStatements, half: halfStatements },
      spans,
    };
  } finally {
    await cleanUp(mark);
  }
}

/** Where a traced topology's span window starts: the wall clock (spans carry epoch times) and the counter's CPU. */
interface SpanWindow {
  counter: SpanCounter;
  atMs: number;
  cpu: CpuSnapshot;
}

/** Opens the span window of a traced topology now (null when there is no span counter). */
function spanWindowStart(counter: SpanCounter | undefined): SpanWindow | null {
  return counter ? { counter, atMs: Date.now(), cpu: cpuSnapshot({ counter: counter.pid }) } : null;
}

/** Spans started from `from` until now, once all have arrived, per order the phases saw final. */
async function spanFigures(from: SpanWindow, phases: PhaseResult[], say: (msg: string) => void): Promise<SpanFigures> {
  const byName = await from.counter.settledCount(from.atMs, Date.now());
  // The counter's CPU until the last of those spans arrived, the settling included.
  const counterCpuMs = (cpuSince(from.cpu, { counter: from.counter.pid }).counter ?? 0) * 10 * ((performance.now() - from.cpu.at) / 1000);
  const total = Object.values(byName).reduce((a, b) => a + b, 0);
  const finals = phases.reduce((n, p) => n + p.accepted - p.stuck, 0);
  say(`spans: ${total} started over both phases, ${(total / finals).toFixed(1)} per final order`);
  return {
    perFinalOrder: total / finals,
    pollerPerFinalOrder: (byName["GET /orders"] ?? 0) / finals,
    counterCpuMsPerOrder: counterCpuMs / finals,
  };
}

/** Waits for the tracked orders to become final, stops the poller, and waits for the shop to stop working (compensations, relays). */
async function drain(
  tracker: OrderTracker,
  pids: Pids,
  idle: Record<string, number>,
  s: BenchSettings,
  say: (msg: string) => void,
): Promise<void> {
  const started = performance.now();
  const left = await tracker.drain(s.drainSeconds * 1000);
  const finalMs = performance.now() - started;
  // The poller's own requests (up to BENCH_POLL_MAX_RPS list reads a second) would keep the shop busy.
  await tracker.stop();
  const quiet = await waitUntilQuiet(pids, idle, Math.max(1000, s.drainSeconds * 1000 - finalMs));
  const ms = performance.now() - started;
  if (left > 0) say(`${left} orders still pending after ${s.drainSeconds} s`);
  else if (!quiet) say(`all orders final after ${(finalMs / 1000).toFixed(1)} s, but the shop still busy at ${s.drainSeconds} s`);
  else if (ms > 3000) say(`all orders final after ${(finalMs / 1000).toFixed(1)} s, shop idle after ${(ms / 1000).toFixed(1)} s`);
}
