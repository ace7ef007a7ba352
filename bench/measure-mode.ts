/** Everything measured for one topology: start time, idle CPU, GET /products, saga load, peak RSS, restart; spans when traced. */
import type { PostgresCluster } from "../test/support/postgres-cluster";
import { cleanUp, defer, depth } from "./cleanup";
import { wrkRequestsPerSecond } from "./http-floor";
import { idleCpu, waitUntilQuiet } from "./idle-cpu";
import { launch, type RunningShop } from "./launch";
import { benchUsers, postAtRate, postAtSaturation, stockUp } from "./load";
import { OrderTracker } from "./order-tracker";
import { type PhaseResult, summarise } from "./phase";
import { type CpuSnapshot, cpuSince, cpuSnapshot, type Pids, peakRssMb } from "./proc-stats";
import type { BenchSettings, Mode } from "./settings";
import type { SpanCounter } from "./span-counter";
import { prepareTopology } from "./topologies";

/** The figures of one topology. */
export interface ModeResult {
  mode: Mode;
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
  /** Poller requests per second while tracking, and its failed rounds. */
  pollerRps: number;
  pollerErrors: number;
  /** warn/error log lines of the shop processes. */
  warnings: string[];
  /** Database statements per order (all processes, BEGIN/COMMIT included, the poller's reads too), per phase. */
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
export async function measureMode(mode: Mode, cluster: PostgresCluster, postmaster: number, s: BenchSettings): Promise<ModeResult> {
  const say = (msg: string) => console.error(`[${mode}] ${msg}`);
  const mark = depth();
  try {
    const { specs, helpers, spanCounter } = await prepareTopology(mode, cluster, s);
    let shop: RunningShop = await launch(specs, s.profileDir ?? undefined);
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
    tracker.start();
    defer("stop the order poller", () => tracker.stop());
    const trackingFrom = performance.now();
    say(`saturation: ${s.clients} clients for ${s.seconds} s`);
    let statementsBefore = await statementCount(shop);
    const spansFrom = spanWindowStart(spanCounter);
    const satRun = await postAtSaturation(shop.urls, tracker, watched(), users, s.seconds);
    await drain(tracker, watched(), idle, s, say);
    const saturation = summarise(satRun, tracker);
    const satStatements = ((await statementCount(shop)) - statementsBefore) / satRun.accepted.length;
    const halfRate = Math.max(1, saturation.finalPerSecond / 2);
    say(`saturation: ${saturation.finalPerSecond.toFixed(1)} final/s; half rate: ${halfRate.toFixed(1)} orders/s for ${s.seconds} s`);
    statementsBefore = await statementCount(shop);
    const halfRun = await postAtRate(shop.urls, tracker, watched(), users, halfRate, s.seconds);
    await drain(tracker, watched(), idle, s, say);
    const half = summarise(halfRun, tracker);
    const halfStatements = ((await statementCount(shop)) - statementsBefore) / halfRun.accepted.length;
    say(`statements per order: ${satStatements.toFixed(1)} at saturation, ${halfStatements.toFixed(1)} at half rate`);
    const spans = spansFrom ? await spanFigures(spansFrom, [saturation, half], say) : null;
    await tracker.stop();
    const trackingSeconds = (performance.now() - trackingFrom) / 1000;

    const peak = Object.fromEntries(Object.entries(shop.pids).map(([name, pid]) => [name, peakRssMb(pid)]));
    const warnings = shop.warnings();
    await shop.stop();
    shop = await launch(specs);
    say(`healthy after ${shop.startMs.toFixed(0)} ms (existing data)`);
    warnings.push(...shop.warnings());
    return {
      mode,
      startFreshMs,
      startExistingMs: shop.startMs,
      idleCpu: idle,
      peakRssMb: peak,
      productsRps,
      productsBody,
      saturation,
      halfRate,
      half,
      pollerRps: tracker.stats.requests / trackingSeconds,
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

/** Statements the shop's processes have sent to the database so far (`shop_db_statements_total`, one scrape per process). */
async function statementCount(shop: RunningShop): Promise<number> {
  let total = 0;
  for (const url of Object.values(shop.processUrls)) {
    const text = await (await fetch(`${url}/metrics`)).text();
    const value = /^shop_db_statements_total (\d+(?:\.\d+)?(?:e\+\d+)?)$/m.exec(text)?.[1];
    if (value === undefined) throw new Error(`${url}/metrics has no shop_db_statements_total`);
    total += Number(value);
  }
  return total;
}

/** Waits for the tracked orders to become final and for the shop to stop working (compensations, relays). */
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
  const quiet = await waitUntilQuiet(pids, idle, Math.max(1000, s.drainSeconds * 1000 - finalMs));
  const ms = performance.now() - started;
  if (left > 0) say(`${left} orders still pending after ${s.drainSeconds} s`);
  else if (!quiet) say(`all orders final after ${(finalMs / 1000).toFixed(1)} s, but the shop still busy at ${s.drainSeconds} s`);
  else if (ms > 3000) say(`all orders final after ${(finalMs / 1000).toFixed(1)} s, shop idle after ${(ms / 1000).toFixed(1)} s`);
}
