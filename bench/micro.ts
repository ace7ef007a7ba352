/**
 * The CPU of one unit of each kind of work, measured alone on the running shop (all its
 * processes, PostgreSQL and the broker): an HTTP request through the shop's middleware
 * (`GET /health/live`, no statement), a status read (`GET /orders/{id}`), and from the
 * difference a statement through the shop's Database; the idle window's CPU per periodic
 * wake-up or Kafka request (what a process does while nothing arrives).
 */
import { type Counts, countsSince, hasWorkCounters } from "./counters";
import { tryCounts } from "./curve";
import type { RunningShop } from "./launch";
import { cpuSince, cpuSnapshot, type Pids } from "./proc-stats";

/** CPU ms of one unit, by kind (null: not measured on this checkout). */
export interface UnitCosts {
  httpMs: number;
  statusReadMs: number;
  statementsPerStatusRead: number;
  statementMs: number;
  /** Idle CPU per idle unit (a timer wake-up of a periodic job, or a Kafka request), and the units per second idle. */
  idleUnitMs: number | null;
  idleUnitsPerSecond: number | null;
}

/** CPU ms of all `pids` per call of `fn`, over `n` sequential calls. */
async function cpuPerCall(pids: Pids, n: number, fn: () => Promise<void>): Promise<number> {
  for (let i = 0; i < Math.min(50, n); i++) await fn(); // warm
  const before = cpuSnapshot(pids);
  for (let i = 0; i < n; i++) await fn();
  const seconds = (performance.now() - before.at) / 1000;
  const pct = Object.values(cpuSince(before, pids)).reduce((a, b) => a + b, 0);
  return (pct * 10 * seconds) / n;
}

/** Idle units (timer wake-ups and Kafka requests) in a window's counts. */
function idleUnits(c: Counts): number {
  return (c.timer_wakeups ?? 0) + Object.entries(c).reduce((n, [k, v]) => (k.startsWith("kafka_") ? n + v : n), 0);
}

/**
 * Measures the unit costs; `orderId` is a final order to read, `idle` the idle window's CPU (% of
 * a core per process), its length and its counts (null without work counters).
 */
export async function measureUnitCosts(
  shop: RunningShop,
  pids: Pids,
  orderId: string,
  requests: number,
  idle: { cpu: Record<string, number>; seconds: number; counts: Counts | null },
): Promise<UnitCosts> {
  const registry = shop.urls.registry;
  const httpMs = await cpuPerCall(pids, requests, async () => void (await (await fetch(`${registry}/health/live`)).arrayBuffer()));
  const before = await tryCounts(shop);
  const statusReadMs = await cpuPerCall(
    pids,
    requests,
    async () => void (await (await fetch(`${registry}/orders/${orderId}`)).arrayBuffer()),
  );
  const after = await tryCounts(shop);
  const reads = Math.min(50, requests) + requests;
  const statementsPerStatusRead = before && after ? Math.round((countsSince(before, after).statements ?? 0) / reads) : Number.NaN;
  const idleMs = Object.values(idle.cpu).reduce((a, b) => a + b, 0) * 10 * idle.seconds;
  const units = idle.counts && hasWorkCounters(idle.counts) ? idleUnits(idle.counts) : 0;
  return {
    httpMs,
    statusReadMs,
    statementsPerStatusRead,
    statementMs: statementsPerStatusRead > 0 ? Math.max(0, statusReadMs - httpMs) / statementsPerStatusRead : Number.NaN,
    idleUnitMs: units > 0 ? idleMs / units : null,
    idleUnitsPerSecond: units > 0 ? units / idle.seconds : null,
  };
}

/** One line: what each unit cost alone. */
export function describeUnits(u: UnitCosts): string {
  const f = (n: number | null) => (n === null || !Number.isFinite(n) ? "n/a" : n.toFixed(3));
  return [
    `HTTP request (GET /health/live) ${f(u.httpMs)} ms`,
    `status read (GET /orders/{id}, ${u.statementsPerStatusRead} statements) ${f(u.statusReadMs)} ms`,
    `statement ${f(u.statementMs)} ms`,
    `idle unit (timer wake-up or Kafka request) ${f(u.idleUnitMs)} ms, ${u.idleUnitsPerSecond === null ? "n/a" : u.idleUnitsPerSecond.toFixed(1)} per second idle`,
  ].join("; ");
}
