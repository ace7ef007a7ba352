/**
 * The end of a run: the shop's audit (each module's GET /admin/audit/report, in process) plus the
 * client's checks, then the result: the trace with stable labels in place of ids (order#3,
 * msg#12), its SHA-256, the violations, and the lines of the first order a violation names.
 */
import { sql } from "drizzle-orm";
import type { z } from "zod";
import { AUDIT_REPORT_SCHEMAS, type AuditReports } from "../src/contracts/audit";
import type { Database } from "../src/db/database";
import { rowsOf } from "../src/db/rows";
import type { RunningModule } from "../src/module";
import { auditShop, type ReportSources } from "../src/saga/audit/shop-audit";
import type { FaultKind } from "./faults";
import type { Incarnation } from "./processes";
import type { Trace } from "./trace";

/** What a run came to. */
export interface SimResult {
  seed: number;
  orders: number;
  /** The trace, one step per line, ids replaced by stable labels (order #3, msg #12). */
  trace: string;
  /** SHA-256 of the trace. */
  hash: string;
  /** The audit's violations (labels in place of ids). */
  violations: string[];
  faults: Record<FaultKind, number>;
  /** Orders by final status. */
  outcomes: Record<string, number>;
  steps: number;
  /** Simulated seconds the run covered. */
  simulatedSeconds: number;
  /** The trace lines of the first order a violation names (empty when none). */
  firstViolatingOrder: { label: string; lines: string[] } | null;
}

/** A finished run, its ids not yet labelled. */
interface FinishedRun extends Omit<SimResult, "trace" | "hash" | "firstViolatingOrder"> {
  /** The trace lines as written. */
  lines: string[];
  /** The orders the client's answers named, in order. */
  orderIds: string[];
  /** The order each request (numbered from 1) created. */
  requestOrder: Map<number, string>;
}

/** An id in the trace, with the word "order " that may precede it (the label says it). */
const LABELLED = /(?:order )?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/g;

/** Audits the shop `inc` serves, adds the client's violations and the database's own check, and traces outcomes and violations. */
export async function auditRun(
  inc: Incarnation,
  db: Database,
  clientViolations: string[],
  trace: Trace,
): Promise<{ violations: string[]; outcomes: Record<string, number> }> {
  const report =
    <M extends keyof AuditReports>(m: M) =>
    async (): Promise<AuditReports[M]> => {
      const res = await (inc.modules.get(m) as RunningModule).router.request("/admin/audit/report");
      const body: unknown = await res.json();
      return (AUDIT_REPORT_SCHEMAS[m] as unknown as z.ZodType<AuditReports[M]>).parse(body);
    };
  const sources: ReportSources = { registry: report("registry"), wallet: report("wallet"), storage: report("storage") };
  const audit = await auditShop(sources);
  audit.violations.push(...clientViolations, ...(await unkeyedOrders(db)));
  const outcomes = await orderOutcomes(db);
  trace.line(
    `outcomes ${Object.entries(outcomes)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}`,
  );
  for (const v of audit.violations) trace.line(`VIOLATION ${v}`);
  return { violations: audit.violations, outcomes };
}

/** The result of a finished run: its trace labelled and hashed, its violations labelled. */
export function simResult(run: FinishedRun): SimResult {
  const label = labeller(knownOrders(run.lines, run.orderIds));
  const labelled = nameRequestOrders(run.lines, run.requestOrder).map(label);
  const violations = run.violations.map(label);
  const text = `${labelled.join("\n")}\n`;
  return {
    seed: run.seed,
    orders: run.orders,
    trace: text,
    hash: new Bun.CryptoHasher("sha256").update(text).digest("hex"),
    violations,
    faults: run.faults,
    outcomes: run.outcomes,
    steps: run.steps,
    simulatedSeconds: run.simulatedSeconds,
    firstViolatingOrder: firstViolatingOrder(violations, labelled),
  };
}

/** The ids that are orders: those the client was answered with, and any the trace calls "order". */
function knownOrders(lines: string[], orderIds: string[]): Set<string> {
  const orders = new Set(orderIds);
  for (const line of lines) for (const m of line.matchAll(/order ([0-9a-f-]{36})/g)) orders.add(m[1] as string);
  return orders;
}

/** Replaces ids by stable labels: orders `order#N`, other ids `msg#N`, numbered by first appearance. */
function labeller(orders: Set<string>): (text: string) => string {
  const labels = new Map<string, string>();
  let orderN = 0;
  let msgN = 0;
  return (text) =>
    text.replace(LABELLED, (_, id: string) => {
      let l = labels.get(id);
      if (!l) {
        l = orders.has(id) ? `order#${++orderN}` : `msg#${++msgN}`;
        labels.set(id, l);
      }
      return l;
    });
}

/** Each request's line names the order the request created. */
function nameRequestOrders(lines: string[], requestOrder: Map<number, string>): string[] {
  return lines.map((l) => {
    const m = l.match(/ request (\d+)(?: \(attempt \d+\))?: POST /);
    const id = m ? requestOrder.get(Number(m[1])) : undefined;
    return id ? `${l} (order ${id})` : l;
  });
}

/** The trace lines of the first order a violation names, or null when none names one. */
function firstViolatingOrder(violations: string[], labelled: string[]): SimResult["firstViolatingOrder"] {
  for (const v of violations) {
    const m = v.match(/order#\d+/);
    if (!m) continue;
    const tag = m[0];
    const re = new RegExp(`${tag}(?!\\d)`);
    return { label: tag, lines: labelled.filter((l) => re.test(l)) };
  }
  return null;
}

/** Every request carries an Idempotency-Key: an order no key names was placed twice for one key. */
async function unkeyedOrders(db: Database): Promise<string[]> {
  const res = await db.read((q) =>
    q.execute(
      sql`select o.id from registry.orders o where not exists (select 1 from registry.idempotency_keys k where k.order_id = o.id) order by o.created_at, o.id`,
    ),
  );
  return rowsOf(res).map((r) => `registry: order ${String(r.id)} is named by no Idempotency-Key (a retried request placed a second order)`);
}

/** Orders by status. */
async function orderOutcomes(db: Database): Promise<Record<string, number>> {
  const res = await db.read((q) => q.execute(sql`select status, count(*)::int as n from registry.orders group by status order by status`));
  return Object.fromEntries(rowsOf(res).map((r) => [String(r.status), Number(r.n)]));
}
