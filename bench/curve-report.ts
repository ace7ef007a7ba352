/** The cost curve, the accounting of one order, and the before/after comparison, as tables. */
import type { CurvePoint } from "./curve";
import type { ModeResult } from "./measure-mode";
import type { PgbenchResult } from "./pgbench";
import { num, perProcess, ratio, renderTable } from "./table";
import { MODE_LABELS } from "./topologies";

/** CPU ms per order of a point, status reads taken out (one at a time) when their cost is known. */
function netCpuMs(r: ModeResult, p: CurvePoint): number {
  const readMs = r.units?.statusReadMs ?? Number.NaN;
  // A read not measured above the rest's noise is left in (the table says "with reads" beside it).
  if (p.statusReads === 0 || !Number.isFinite(readMs)) return p.cpuMsPerOrder;
  return p.cpuMsPerOrder - (p.statusReads / p.finals) * readMs;
}

/**
 * Per-order counts of a point (one at a time: the status reads' requests and statements taken
 * out), with the runtime threads' CPU ms as the count of `runtime_threads` (a cost of 1 ms each).
 */
function perOrder(r: ModeResult, p: CurvePoint): Record<string, number> | null {
  if (!p.counts || p.finals === 0) return null;
  const out = Object.fromEntries(Object.entries(p.counts).map(([k, v]) => [k, v / p.finals]));
  out.runtime_threads = p.runtimeMsPerOrder;
  if (p.statusReads > 0) {
    const reads = p.statusReads / p.finals;
    out.http_requests = (out.http_requests ?? 0) - reads;
    out.statements = (out.statements ?? 0) - reads * (r.units?.statementsPerStatusRead ?? Number.NaN);
  }
  return out;
}

/** The curve of one mode. */
export function curveTable(r: ModeResult, pgbench: PgbenchResult): string {
  const sat = r.curve.find((p) => p.label === "saturation");
  const satMs = sat ? sat.cpuMsPerOrder : Number.NaN;
  const txn = pgbench.cpuMsPerTransaction;
  const rows = r.curve.map((p) => {
    const net = netCpuMs(r, p);
    return [
      p.label,
      `${num(p.offered)} → ${num(p.finalPerSecond)}`,
      `${num(p.p50)} / ${num(p.p99)}`,
      perProcess(p.cpuMsPerOrderByProcess),
      p.statusReads > 0 ? `${num(net)} (${num(p.cpuMsPerOrder)} with reads)` : num(net),
      num(net / txn),
      ratio(net / satMs),
      p.stuck > 0 ? `${p.stuck} not final` : "",
    ];
  });
  const title = `${MODE_LABELS[r.mode]}${r.checkout ? ` (${r.checkout})` : ""}`;
  return `${title}\n${renderTable([
    ["rate", "offered → final/s", "POST→final p50 / p99, ms", "CPU ms per order, by process", "total", "pgbench txns", "÷ saturation", ""],
    ...rows,
  ])}`;
}

/** What one unit of a kind costs, in a burst or at a trickle (null: counted, its CPU inside another kind's). */
type UnitCost = (u: NonNullable<ModeResult["units"]>, trickle: boolean) => number | null;

/** The kinds the accounting lists, in order, with what one costs. */
const KINDS: { kind: string; label: string; cost: UnitCost }[] = [
  { kind: "statements", label: "database statements (BEGIN/COMMIT included)", cost: (u, t) => (t ? u.trickle.statementMs : u.statementMs) },
  { kind: "http_requests", label: "HTTP requests", cost: (u, t) => (t ? u.trickle.httpMs : u.httpMs) },
  { kind: "runtime_threads", label: "runtime threads (JIT, GC, allocator; measured per thread)", cost: () => 1 },
  { kind: "timer_wakeups", label: "timer wake-ups of periodic jobs", cost: (u) => u.idleUnitMs },
  { kind: "kafka_*", label: "Kafka requests (all APIs)", cost: (u) => u.idleUnitMs },
  { kind: "kafka_Fetch", label: "  of which Fetch", cost: () => null },
  { kind: "kafka_Produce", label: "  of which Produce", cost: () => null },
  { kind: "kafka_OffsetCommit", label: "  of which OffsetCommit", cost: () => null },
  { kind: "kafka_Heartbeat", label: "  of which Heartbeat", cost: () => null },
  { kind: "consumer_batches", label: "consumer batches (their statements above)", cost: () => null },
  { kind: "consumer_records", label: "  records in them", cost: () => null },
  { kind: "relay_claims", label: "relay claims (statements above)", cost: () => null },
  { kind: "relay_empty_claims", label: "  of which found no row", cost: () => null },
  { kind: "relay_marks", label: "relay marks (statements above)", cost: () => null },
  { kind: "admission_reads", label: "admission reads (statements above)", cost: () => null },
  { kind: "catalogue_checks", label: "catalogue checks (statements above)", cost: () => null },
  { kind: "periodic_statements", label: "statements of periodic jobs (above)", cost: () => null },
];

const kafkaTotal = (c: Record<string, number>) => Object.entries(c).reduce((n, [k, v]) => (k.startsWith("kafka_") ? n + v : n), 0);
const countOf = (c: Record<string, number> | null, kind: string) =>
  c === null ? Number.NaN : kind === "kafka_*" ? kafkaTotal(c) : (c[kind] ?? Number.NaN);

/** "a / b" of two unit costs, or one figure when they are the same (the idle kinds). */
function costCell(a: number | null, b: number | null): string {
  const f = (n: number | null) => (n === null || !Number.isFinite(n) ? "n/a" : num(n));
  return a === b ? f(a) : `${f(b)} / ${f(a)}`;
}

/**
 * How many of each kind one order costs at the first fixed rate (10/s, its units measured at a
 * trickle) and at saturation (measured back to back), what each costs alone, and the sum against
 * the measured total.
 */
export function accountingTable(r: ModeResult): string {
  const slow = r.curve.find((p) => p.label.endsWith("/s")) ?? r.curve[0];
  const sat = r.curve.find((p) => p.label === "saturation");
  const title = `accounting of one order, ${MODE_LABELS[r.mode]}${r.checkout ? ` (${r.checkout})` : ""}`;
  if (!slow || !sat) return `${title}: no curve`;
  const a = perOrder(r, slow);
  const b = perOrder(r, sat);
  const u = r.units;
  const na = (n: number) => (Number.isFinite(n) ? num(n) : "n/a");
  const sums = [0, 0];
  const rows: string[][] = [];
  for (const k of KINDS) {
    const ca = countOf(a, k.kind);
    const cb = countOf(b, k.kind);
    if (k.kind.startsWith("kafka_") && !(ca > 0 || cb > 0)) continue;
    const oneA = u ? k.cost(u, true) : null;
    const oneB = u ? k.cost(u, false) : null;
    const msA = oneA === null ? Number.NaN : ca * oneA;
    const msB = oneB === null ? Number.NaN : cb * oneB;
    if (Number.isFinite(msA)) sums[0] = (sums[0] ?? 0) + msA;
    if (Number.isFinite(msB)) sums[1] = (sums[1] ?? 0) + msB;
    const costed = oneA !== null;
    // Runtime threads are measured as CPU ms per order: no count, no unit cost of their own.
    if (k.kind === "runtime_threads") rows.push([k.label, "", "", "", na(msA), na(msB)]);
    else rows.push([k.label, costed ? costCell(oneA, oneB) : "", na(ca), na(cb), costed ? na(msA) : "", costed ? na(msB) : ""]);
  }
  const totalA = netCpuMs(r, slow);
  const totalB = netCpuMs(r, sat);
  const known = a !== null && u !== null;
  rows.push(["sum of the costed kinds, ms", "", "", "", known ? num(sums[0] ?? 0) : "n/a", known ? num(sums[1] ?? 0) : "n/a"]);
  rows.push(["measured CPU per order (all processes), ms", "", "", "", num(totalA), num(totalB)]);
  rows.push(["sum ÷ measured", "", "", "", known ? ratio((sums[0] ?? 0) / totalA) : "n/a", known ? ratio((sums[1] ?? 0) / totalB) : "n/a"]);
  return `${title}\n${renderTable([["kind", "CPU of one, ms (burst / trickle)", `per order at ${slow.label}`, "per order at saturation", `ms per order at ${slow.label}`, "ms at saturation"], ...rows])}`;
}

/** What the curve and accounting figures mean. */
export function curveLegend(): string {
  return [
    "cost curve: open-loop arrivals at each rate, no poller while posting (orders are followed to their end afterwards), and one order",
    "  at a time (the next posted once GET /orders/{id} shows the last final). POST→final: the order's created_at to its updated_at",
    "  once final, the shop's own clock. CPU: every shop process, PostgreSQL with its backends, the broker; not the bench; over the",
    "  whole posting window, idle work included, ÷ the orders final in it. One at a time: the status reads' CPU (measured alone) taken out.",
    "accounting: the shop's own counters (GET /metrics: shop_db_statements_total, shop_http_requests_total without /metrics,",
    "  shop_work_total{kind}, shop_kafka_requests_total{api}) over the same windows ÷ the same orders. CPU of one: measured alone on",
    "  the running shop, as what it adds to the shop at rest (rest windows' mean rate and the runtime threads taken out), back to back",
    "  (used at saturation) and 10 a second (used at 10/s): an HTTP request = a POST /orders that validation refuses; a statement =",
    "  (a deposit − that request) ÷ the deposit's statements; a timer wake-up or Kafka request = the rest window's CPU (runtime",
    "  threads out) ÷ the wake-ups and Kafka requests in it. Runtime threads (every thread of a Bun process but its JavaScript one:",
    "  JIT, GC, allocator) are measured per thread at each rate. Kinds without a cost are counted inside another (a consumer batch",
    "  is its statements). n/a: the checkout has no work counters, or a unit was not above the rest's noise.",
  ].join("\n");
}

/** After/before ratios of the main figures, mode by mode (same run, same machine). */
export function comparisonTable(after: ModeResult[], before: ModeResult[]): string {
  const rows: string[][] = [];
  for (const a of after) {
    const b = before.find((x) => x.mode === a.mode);
    if (!b) continue;
    const line = (what: string, x: number, y: number) => rows.push([`${a.mode}: ${what}`, num(x), num(y), ratio(x / y)]);
    line("saturation final/s", a.saturation.finalPerSecond, b.saturation.finalPerSecond);
    for (const p of a.curve) {
      const q = b.curve.find((x) => x.label === p.label);
      if (!q) continue;
      line(`${p.label}: CPU ms per order`, netCpuMs(a, p), netCpuMs(b, q));
      line(`${p.label}: POST→final p50, ms`, p.p50, q.p50);
      line(`${p.label}: POST→final p99, ms`, p.p99, q.p99);
      const sa = perOrder(a, p)?.statements;
      const sb = perOrder(b, q)?.statements;
      if (sa !== undefined && sb !== undefined) line(`${p.label}: statements per order`, sa, sb);
    }
    const idle = (r: ModeResult) => Object.values(r.idleCpu).reduce((x, y) => x + y, 0);
    line("idle CPU, % of a core (all processes)", idle(a), idle(b));
  }
  return renderTable([["figure", "after (this checkout)", "before (baseline)", "after ÷ before"], ...rows]);
}
