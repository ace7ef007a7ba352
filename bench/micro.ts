/**
 * The CPU of one unit of each kind of work, measured alone on the running shop (all its
 * processes, PostgreSQL and the broker), as what it adds to the shop at rest: the mean rate of
 * rest windows measured just before and after is taken out (a figure not above that noise is
 * NaN, "n/a"), and so are the Bun processes' runtime threads (JIT, GC, allocator), which the
 * accounting measures per thread at each rate instead. Each kind is measured twice: back to back
 * (what it costs in a burst) and one call every 1/TRICKLE_PER_SECOND s (at a trickle, where
 * caches and branch predictors are cold again at each call).
 * An HTTP request is a `POST /orders` that validation refuses (parse, validate, answer; no
 * statement); a statement is a deposit (`POST /wallets/{id}/deposits`, a write transaction) less
 * that request, ÷ its statements; a status read (`GET /orders/{id}`) is measured for the
 * one-at-a-time point; an idle unit is the rest window's CPU per periodic wake-up or Kafka request.
 */
import { adminHeaders } from "../test/support/http";
import { type Counts, countsSince, hasWorkCounters } from "./counters";
import { tryCounts } from "./curve";
import type { RunningShop } from "./launch";
import { benchUsers } from "./load";
import { type CpuNs, cpuNs, type Pids } from "./proc-stats";

/** Calls per kind at a trickle, and their rate. */
export const TRICKLE_CALLS = 100;
export const TRICKLE_PER_SECOND = 10;

/** What an HTTP request and a statement cost, measured one way. */
interface KindCosts {
  httpMs: number;
  statementMs: number;
}

/** CPU ms of one unit, by kind (null: not measured on this checkout). */
export interface UnitCosts extends KindCosts {
  /** The same measured at a trickle (TRICKLE_PER_SECOND): what the accounting uses for its 10/s column. */
  trickle: KindCosts;
  /** The rest rate taken out of each measurement: % of a core, all processes, runtime threads out. */
  restPct: number;
  statusReadMs: number;
  statementsPerStatusRead: number;
  statementsPerDeposit: number;
  /** Rest CPU per idle unit (a timer wake-up of a periodic job, or a Kafka request), and the units per second at rest. */
  idleUnitMs: number | null;
  idleUnitsPerSecond: number | null;
}

/** CPU ms of all `pids` since `before` with the runtime threads left out, and the seconds it took. */
function busySince(before: CpuNs, pids: Pids): { ms: number; seconds: number } {
  const after = cpuNs(pids);
  return { ms: (after.total - before.total - (after.runtime - before.runtime)) / 1e6, seconds: (after.at - before.at) / 1000 };
}

/** How calls are made: `n` of them, one every `spacingMs` (0: back to back). */
interface Calls {
  pids: Pids;
  n: number;
  spacingMs: number;
}

/** CPU ms of all `pids` per call (runtime threads out, rest not taken out yet) and seconds per call. */
interface PerCall {
  ms: number;
  seconds: number;
}

/** Calls `fn` as `calls` says (after up to 50 to warm up) and measures what each took. */
async function cpuPerCall({ pids, n, spacingMs }: Calls, fn: () => Promise<void>): Promise<PerCall> {
  for (let i = 0; i < Math.min(50, n); i++) await fn(); // warm
  const before = cpuNs(pids);
  for (let i = 0; i < n; i++) {
    const wait = before.at + i * spacingMs - performance.now();
    if (wait >= 1) await Bun.sleep(wait);
    await fn();
  }
  // Up to the next call's due time: a trickle's last call is followed by its share of rest.
  if (spacingMs > 0) await Bun.sleep(Math.max(0, before.at + n * spacingMs - performance.now()));
  const busy = busySince(before, pids);
  return { ms: busy.ms / n, seconds: busy.seconds / n };
}

/** What a call added to the shop at rest (`restPct`, % of a core); NaN when not above the rest's noise. */
function beyondRest(call: PerCall, restPct: number): number {
  const ms = call.ms - restPct * 10 * call.seconds;
  return ms > 0 ? ms : Number.NaN;
}

/** The mean rate of two rest windows, % of a core. */
const meanPct = (a: Rest, b: Rest) => (a.ms + b.ms) / 10 / (a.seconds + b.seconds);

/** Idle units (timer wake-ups and Kafka requests) in a window's counts. */
function idleUnits(c: Counts): number {
  return (c.timer_wakeups ?? 0) + Object.entries(c).reduce((n, [k, v]) => (k.startsWith("kafka_") ? n + v : n), 0);
}

/** Throws unless `res` answered `status`. */
async function expectStatus(what: string, status: number, res: Promise<Response>): Promise<void> {
  const r = await res;
  await r.arrayBuffer();
  if (r.status !== status) throw new Error(`unit costs: ${what} answered ${r.status}, not ${status}`);
}

/** `run`'s measurement and the statements per call (rounded) of its `calls` calls, from the shop's counters. */
async function withStatements(shop: RunningShop, calls: number, run: () => Promise<PerCall>): Promise<PerCall & { statements: number }> {
  const before = await tryCounts(shop);
  const measured = await run();
  const after = await tryCounts(shop);
  return { ...measured, statements: before && after ? Math.round((countsSince(before, after).statements ?? 0) / calls) : Number.NaN };
}

/** The requests measured: a POST /orders validation refuses, a status read, a deposit. */
function requests(shop: RunningShop, orderId: string) {
  const { registry, wallet } = shop.urls;
  const user = benchUsers(1)[0];
  const refused = JSON.stringify({ user_id: user, items: [] });
  const json = { "content-type": "application/json" };
  return {
    refused: () =>
      expectStatus("POST /orders without items", 400, fetch(`${registry}/orders`, { method: "POST", headers: json, body: refused })),
    read: () => expectStatus("GET /orders/{id}", 200, fetch(`${registry}/orders/${orderId}`)),
    deposit: () =>
      expectStatus(
        "a deposit",
        201,
        fetch(`${wallet}/wallets/${user}/deposits`, { method: "POST", headers: { ...json, ...adminHeaders }, body: '{"amount_cents":1}' }),
      ),
  };
}

/** A refused POST and a deposit measured with `calls` (the deposit's statements from the shop's counters). */
async function kindCosts(
  shop: RunningShop,
  calls: Calls,
  orderId: string,
): Promise<{ http: PerCall; deposit: PerCall & { statements: number } }> {
  const r = requests(shop, orderId);
  const http = await cpuPerCall(calls, r.refused);
  const deposit = await withStatements(shop, Math.min(50, calls.n) + calls.n, () => cpuPerCall(calls, r.deposit));
  return { http, deposit };
}

/** A statement: (a deposit − a refused POST) ÷ the deposit's statements, both beyond the rest. */
function statementOf(k: Awaited<ReturnType<typeof kindCosts>>, restPct: number): number {
  const ms = (beyondRest(k.deposit, restPct) - beyondRest(k.http, restPct)) / k.deposit.statements;
  return ms > 0 ? ms : Number.NaN;
}

/** A rest window: CPU ms (runtime threads out), its length, and the shop's counts over it. */
interface Rest {
  ms: number;
  seconds: number;
  counts: Counts | null;
}

/** `seconds` of rest measured. */
async function restWindow(shop: RunningShop, pids: Pids, seconds: number): Promise<Rest> {
  const before = await tryCounts(shop);
  const from = cpuNs(pids);
  await Bun.sleep(seconds * 1000);
  const rest = busySince(from, pids);
  const after = await tryCounts(shop);
  return { ...rest, counts: before && after ? countsSince(before, after) : null };
}

/**
 * Measures the unit costs; `orderId` is a final order to read. What a shop does at rest drifts
 * (PostgreSQL's autovacuum and PGlite's checkpoints after a load, a consumer's fetches), so each
 * set of measurements has a rest window of `restSeconds` before and after it, and the mean rate
 * of the two is taken out of it.
 */
export async function measureUnitCosts(shop: RunningShop, pids: Pids, orderId: string, n: number, restSeconds: number): Promise<UnitCosts> {
  const first = await restWindow(shop, pids, restSeconds);
  const hotCalls = { pids, n, spacingMs: 0 };
  const hot = await kindCosts(shop, hotCalls, orderId);
  const read = await withStatements(shop, Math.min(50, n) + n, () => cpuPerCall(hotCalls, requests(shop, orderId).read));
  const second = await restWindow(shop, pids, restSeconds);
  const trickle = await kindCosts(shop, { pids, n: TRICKLE_CALLS, spacingMs: 1000 / TRICKLE_PER_SECOND }, orderId);
  const third = await restWindow(shop, pids, restSeconds);
  const hotRest = meanPct(first, second);
  const trickleRest = meanPct(second, third);
  const units = first.counts && hasWorkCounters(first.counts) ? idleUnits(first.counts) : 0;
  return {
    httpMs: beyondRest(hot.http, hotRest),
    statementMs: statementOf(hot, hotRest),
    statementsPerDeposit: hot.deposit.statements,
    trickle: { httpMs: beyondRest(trickle.http, trickleRest), statementMs: statementOf(trickle, trickleRest) },
    restPct: (hotRest + trickleRest) / 2,
    statusReadMs: beyondRest(read, hotRest),
    statementsPerStatusRead: read.statements,
    idleUnitMs: units > 0 ? first.ms / units : null,
    idleUnitsPerSecond: units > 0 ? units / first.seconds : null,
  };
}

/** One line: what each unit cost alone. */
export function describeUnits(u: UnitCosts): string {
  const f = (n: number | null) => (n === null || !Number.isFinite(n) ? "n/a" : n.toFixed(3));
  return [
    `HTTP request (POST /orders refused by validation) ${f(u.httpMs)} ms, at ${TRICKLE_PER_SECOND}/s ${f(u.trickle.httpMs)} ms`,
    `statement (a deposit of ${u.statementsPerDeposit}, less that request) ${f(u.statementMs)} ms, at ${TRICKLE_PER_SECOND}/s ${f(u.trickle.statementMs)} ms`,
    `status read (GET /orders/{id}, ${u.statementsPerStatusRead} statements) ${f(u.statusReadMs)} ms`,
    `idle unit (timer wake-up or Kafka request) ${f(u.idleUnitMs)} ms, ${u.idleUnitsPerSecond === null ? "n/a" : u.idleUnitsPerSecond.toFixed(1)} per second at rest`,
    `rest rate taken out ${f(u.restPct)}% of a core`,
  ].join("; ");
}
