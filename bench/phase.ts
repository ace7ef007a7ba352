/** Figures for one phase of posting: rates, POST-to-final latency, rejections. */
import type { PostingRun } from "./load";
import type { OrderTracker, Outcome } from "./order-tracker";

/** The summary of a phase. */
export interface PhaseResult {
  seconds: number;
  accepted: number;
  acceptedPerSecond: number;
  /** Orders final (by the shop's updated_at) while posting went on, per second of posting. */
  finalPerSecond: number;
  /** Those orders. */
  finals: number;
  /** Orders seen final after posting stopped, per second until the last one (NaN if under 50 or under 1 s). */
  drainPerSecond: number;
  /** From the order's created_at to its updated_at once final (the shop's own timestamps), in ms. */
  p50: number;
  p99: number;
  /** Median time from the registry's updated_at to the poller seeing the order final. */
  pollLagP50: number;
  /** Final orders rejected, by reason. */
  rejected: Record<string, number>;
  /** Accepted orders not final by the end of the drain wait. */
  stuck: number;
  failures: Record<string, number>;
  cpu: Record<string, number>;
  loadCpu: number;
  /** % of a core used by programs other than the shop, its database and broker, and the bench. */
  otherCpu: number;
  /** CPU milliseconds the shop (with database and broker) spent per order seen final while posting. */
  cpuMsPerOrder: number;
  /** The same, per process (shop processes, PostgreSQL, the broker). */
  cpuMsPerOrderByProcess: Record<string, number>;
  /** Of cpuMsPerOrder, what the shop's runtime threads (JIT, GC, allocator) spent. */
  runtimeMsPerOrder: number;
}

/** Nearest-rank percentile of sorted values (NaN when empty). */
export function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

/** Summarises a posting run from the tracker's outcomes (call after draining). */
export function summarise(run: PostingRun, tracker: OrderTracker): PhaseResult {
  const seconds = (run.endedAt - run.startedAt) / 1000;
  const outcomes = run.accepted.map((a) => tracker.outcome(a.id)).filter((o): o is Outcome => o !== undefined);
  const latencies = outcomes.map((o) => o.finalAtMs - o.createdAtMs).sort((a, b) => a - b);
  const lags = outcomes.map((o) => o.pollLagMs).sort((a, b) => a - b);
  const rejected: Record<string, number> = {};
  for (const o of outcomes) if (o.status === "rejected") rejected[o.reason ?? "?"] = (rejected[o.reason ?? "?"] ?? 0) + 1;
  const windowEnd = performance.timeOrigin + run.endedAt;
  const finals = outcomes.filter((o) => o.finalAtMs <= windowEnd).length;
  const shopCpu = Object.values(run.cpu).reduce((a, b) => a + b, 0);
  const drainMs = Math.max(0, ...outcomes.map((o) => o.finalAtMs - windowEnd));
  const drained = outcomes.length - finals;
  return {
    seconds,
    accepted: run.accepted.length,
    acceptedPerSecond: run.accepted.length / seconds,
    finalPerSecond: finals / seconds,
    finals,
    drainPerSecond: drained >= 50 && drainMs >= 1000 ? drained / (drainMs / 1000) : Number.NaN,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    pollLagP50: percentile(lags, 0.5),
    rejected,
    stuck: run.accepted.length - outcomes.length,
    failures: run.failures,
    cpu: run.cpu,
    loadCpu: run.loadCpu,
    otherCpu: Math.max(0, run.machineCpu - shopCpu - run.loadCpu),
    cpuMsPerOrder: finals > 0 ? (shopCpu * 10 * seconds) / finals : Number.NaN,
    cpuMsPerOrderByProcess: Object.fromEntries(
      Object.entries(run.cpu).map(([name, pct]) => [name, finals > 0 ? (pct * 10 * seconds) / finals : Number.NaN]),
    ),
    runtimeMsPerOrder: finals > 0 ? run.runtimeMs / finals : Number.NaN,
  };
}
