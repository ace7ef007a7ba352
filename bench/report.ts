/** The bench's one table: figures per topology, their ratios to the ceilings, and the ceilings. */
import type { ModeResult } from "./measure-mode";
import type { PgbenchResult } from "./pgbench";
import type { PhaseResult } from "./phase";
import type { BenchSettings } from "./settings";
import { num, perProcess, ratio, renderTable } from "./table";
import { MODE_LABELS, UNTRACED } from "./topologies";

/** What the run measured outside the topologies. */
export interface Ceilings {
  pgbench: PgbenchResult;
  /** wrk req/s on a bare Bun.serve returning the same GET /products body. */
  bareRps: number;
}

/** Builds the table rows and renders them. */
export function reportTable(results: ModeResult[], ceilings: Ceilings, s: BenchSettings): string {
  const tps = ceilings.pgbench.tps;
  const txn = ceilings.pgbench.cpuMsPerTransaction;
  const row = (label: string, cell: (r: ModeResult) => string, ceiling = ""): string[] => [label, ...results.map(cell), ceiling];
  const latency = (p: PhaseResult) => `${num(p.p50)} / ${num(p.p99)}`;
  const sum = (v: Record<string, number>) => Object.values(v).reduce((a, b) => a + b, 0);
  return renderTable([
    ["", ...results.map((r) => MODE_LABELS[r.mode]), "ceiling"],
    row(`saturation (${s.clients} clients): orders accepted/s`, (r) => num(r.saturation.acceptedPerSecond)),
    row("saturation: orders final/s", (r) => num(r.saturation.finalPerSecond), `pgbench TPC-B ${num(tps)} tps`),
    row("  then the backlog, once posting stopped: final/s", (r) => num(r.saturation.drainPerSecond)),
    row("saturation: final/s ÷ pgbench tps", (r) => ratio(r.saturation.finalPerSecond / tps)),
    row("saturation: POST→final p50 / p99, ms", (r) => latency(r.saturation)),
    row("half rate: orders/s offered → final/s", (r) => `${num(r.halfRate)} → ${num(r.half.finalPerSecond)}`),
    row("half rate: POST→final p50 / p99, ms", (r) => latency(r.half)),
    row("orders accepted / rejected / never final", (r) =>
      [r.saturation.accepted + r.half.accepted, rejections(r), r.saturation.stuck + r.half.stuck].join(" / "),
    ),
    row("GET /products req/s (wrk)", (r) => num(r.productsRps), `bare Bun.serve ${num(ceilings.bareRps)} req/s`),
    row("GET /products ÷ bare Bun.serve", (r) => ratio(r.productsRps / ceilings.bareRps)),
    row("start → healthy, fresh data, ms", (r) => num(r.startFreshMs)),
    row("start → healthy, existing data, ms", (r) => num(r.startExistingMs)),
    row("peak RSS (VmHWM), MiB", (r) => perProcess(r.peakRssMb, (n) => n.toFixed(0))),
    row(`idle CPU over ${s.idleSeconds} s, % of a core`, (r) => perProcess(r.idleCpu)),
    row("CPU at saturation, % of a core", (r) => perProcess(r.saturation.cpu, (n) => n.toFixed(0))),
    row("  sum of those / load generator / other programs", (r) =>
      [sum(r.saturation.cpu), r.saturation.loadCpu, r.saturation.otherCpu].map((n) => n.toFixed(0)).join(" / "),
    ),
    row(
      "CPU per final order at half rate, ms",
      (r) => perProcess(r.half.cpuMsPerOrderByProcess),
      `pgbench: ${num(txn)} ms of CPU per transaction`,
    ),
    row(
      "  all processes, ms; in pgbench transactions",
      (r) => `${num(r.half.cpuMsPerOrder)}; ${num(r.half.cpuMsPerOrder / txn)}`,
      `(server ${num(ceilings.pgbench.serverCpuMs)} + pgbench ${num(ceilings.pgbench.clientCpuMs)})`,
    ),
    row(
      "CPU per final order at saturation, ms; in pgbench transactions",
      (r) => `${num(r.saturation.cpuMsPerOrder)}; ${num(r.saturation.cpuMsPerOrder / txn)}`,
    ),
    row(
      "statements per order, saturation / half rate",
      (r) => `${num(r.statementsPerOrder.saturation)} / ${num(r.statementsPerOrder.half)}`,
    ),
    row(
      "poller (between phases only): its lag p50 ms, saturation / half",
      (r) => `${num(r.saturation.pollLagP50)} / ${num(r.half.pollLagP50)}`,
    ),
  ]);
}

/** What the table's figures mean. */
export function reportLegend(): string {
  return [
    "latency: from the order's created_at to its updated_at once completed or rejected (the shop's own timestamps). No poller runs",
    "  while posting; it follows the orders to their end afterwards, its lag being how long after updated_at it saw them final.",
    "  final/s counts orders final (updated_at) within the posting window; the backlog's final/s those final after it, until the",
    "  last (- when under 50 orders or 1 s).",
    "CPU: r/w/s = registry/wallet/storage processes; pg = the PostgreSQL server with all its backends; kafka = the mock broker;",
    "  other programs = the whole machine minus those and the bench. CPU over the posting window ÷ the orders final in it.",
    "  In pgbench transactions: CPU per order ÷ the CPU of one TPC-B transaction measured in this run (PostgreSQL's",
    "  and pgbench's CPU over the pgbench run ÷ its transactions): a cost that does not depend on the machine's speed.",
    "statements: shop_db_statements_total of every process (BEGIN and COMMIT included) over the posting window ÷ the orders",
    "  final in it (batches grow with the rate, so fewer per order at saturation).",
    "traced: tracing on, every trace sampled, exported over OTLP/HTTP (JSON) to a span counter: a process of its own",
    "  standing for a collector, so its CPU is among other programs, not the shop's.",
  ].join("\n");
}

/** "name: {json log line}" lines grouped by process and message: `registry "msg" ×2; ...`. */
function summariseLogLines(lines: string[]): string {
  const counts = new Map<string, number>();
  for (const line of lines) {
    const at = line.indexOf(": ");
    let msg = line.slice(at + 2);
    try {
      msg = String((JSON.parse(msg) as { msg?: unknown }).msg ?? msg);
    } catch {}
    const key = `${line.slice(0, at)} "${msg.slice(0, 120)}"`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([key, n]) => (n > 1 ? `${key} ×${n}` : key)).join("; ");
}

/** Rejected orders of both phases: "0", "12 timeout" or "12 (10 timeout, 2 out_of_stock)". */
function rejections(r: ModeResult): string {
  const byReason: Record<string, number> = {};
  for (const p of [r.saturation, r.half])
    for (const [reason, n] of Object.entries(p.rejected)) byReason[reason] = (byReason[reason] ?? 0) + n;
  const entries = Object.entries(byReason);
  const total = entries.reduce((a, [, n]) => a + n, 0);
  if (entries.length === 0) return "0";
  if (entries.length === 1) return `${total} ${(entries[0] as [string, number])[0]}`;
  return `${total} (${entries.map(([reason, n]) => `${n} ${reason}`).join(", ")})`;
}

/** Lines about things that went wrong or look odd (failed POSTs, rejections, pending orders, shop warnings), and what tracing costs. */
export function reportNotes(results: ModeResult[]): string[] {
  const notes: string[] = [];
  for (const r of results) {
    for (const [phase, p] of [
      ["saturation", r.saturation],
      ["half rate", r.half],
    ] as const) {
      if (Object.keys(p.failures).length) notes.push(`${r.mode} ${phase}: POST /orders failures ${JSON.stringify(p.failures)}`);
      if (Object.keys(p.rejected).length) notes.push(`${r.mode} ${phase}: rejected ${JSON.stringify(p.rejected)}`);
      if (p.stuck) notes.push(`${r.mode} ${phase}: ${p.stuck} orders never seen final`);
    }
    if (r.pollerErrors) notes.push(`${r.mode}: ${r.pollerErrors} order poller rounds failed (first errors above)`);
    if (r.warnings.length) notes.push(`${r.mode}: ${r.warnings.length} warn/error log lines: ${summariseLogLines(r.warnings)}`);
    notes.push(...tracingNotes(r, results));
  }
  return notes;
}

/** For a traced topology: its spans per order, and its CPU per order and final/s against its untraced twin in the same run. */
function tracingNotes(r: ModeResult, results: ModeResult[]): string[] {
  if (!r.spans) return [];
  const notes = [
    `${r.mode}: ${num(r.spans.perFinalOrder)} spans received per final order over both phases and their drains ` +
      `(${num(r.spans.pollerPerFinalOrder)} of them the poller's GET /orders); the span counter used ${num(r.spans.counterCpuMsPerOrder)} ms of CPU per final order`,
  ];
  const off = results.find((o) => o.mode === UNTRACED[r.mode]);
  if (off) {
    const vs = (on: number, base: number) => `${ratio(on / base)} (${num(on)} / ${num(base)})`;
    notes.push(
      `${r.mode} ÷ ${off.mode}, same run: CPU per final order ${vs(r.saturation.cpuMsPerOrder, off.saturation.cpuMsPerOrder)} ms at saturation, ` +
        `${vs(r.half.cpuMsPerOrder, off.half.cpuMsPerOrder)} ms at half rate; saturation final/s ${vs(r.saturation.finalPerSecond, off.saturation.finalPerSecond)}`,
    );
  }
  return notes;
}
