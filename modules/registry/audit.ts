/**
 * Registry's audit report: its own rules (every order final within the deadline, every rejected
 * order's compensation confirmed in time, every unknown order answered, each order's total its
 * lines, every outbox row published) and, as facts for the cross-module check, every order with
 * its status, compensation, total and lines, and the orders it heard of but never made.
 */
import { sql } from "drizzle-orm";
import type { AuditItem, RegistryAuditReport } from "../../src/contracts/audit";
import type { Database, Executor } from "../../src/db/database";
import { rowsOf } from "../../src/db/rows";
import { checkOutbox, LISTED, localViolations, readSnapshot } from "../../src/saga/audit/module-checks";
import * as tables from "./schema";
import { SWEEP_SLACK_MS } from "./sweepers";

/** A pending order gets this long past the deadline for the sweeper to reach it; an unknown order, past its grace. */
const SWEEP_SLACK_SECONDS = SWEEP_SLACK_MS / 1000;

/** The registry settings the rules depend on. */
export interface RegistryAuditSettings {
  deadlineSeconds: number;
  compensationDeadlineSeconds: number;
  unknownOrderGraceSeconds: number;
}

/** Builds registry's report from one snapshot of its tables. */
export async function registryAuditReport(db: Database, settings: RegistryAuditSettings): Promise<RegistryAuditReport> {
  const checkedAt = new Date().toISOString();
  return readSnapshot(db, async (tx) => {
    const out = localViolations();
    await checkOverdue(tx, out, settings);
    const unknown = await unknownOrders(tx, out, settings);
    const orders = await orderFacts(tx, out);
    const messaging = await checkOutbox(tx, tables, out);
    return {
      module: "registry" as const,
      checked_at: checkedAt,
      violations: out.list(),
      counts: { orders: orders.length, unknown_orders: unknown.length, ...messaging },
      facts: {
        // An effect on an order registry never made is answered after the grace and undone within the compensation deadline.
        settle_seconds: settings.unknownOrderGraceSeconds + SWEEP_SLACK_SECONDS + settings.compensationDeadlineSeconds,
        orders,
        unknown_orders: unknown,
      },
    };
  });
}

type Out = ReturnType<typeof localViolations>;
type Status = RegistryAuditReport["facts"]["orders"][number]["status"];

/** No order pending past the deadline (plus the sweeper's slack); no compensation unconfirmed past its deadline. */
async function checkOverdue(tx: Executor, out: Out, s: RegistryAuditSettings): Promise<void> {
  const pending = rowsOf(
    await tx.execute(sql`
      select id, user_id, extract(epoch from now() - created_at) as age_seconds, count(*) over () as total
      from registry.orders
      where status = 'pending' and created_at < now() - make_interval(secs => ${s.deadlineSeconds + SWEEP_SLACK_SECONDS})
      order by created_at limit ${LISTED}`),
  );
  out.addCounted(
    "orders not final",
    Number(pending[0]?.total ?? 0),
    pending.map(
      (r) =>
        `order ${r.id} (user ${r.user_id}) still pending ${Math.round(Number(r.age_seconds))} s after it was placed (deadline ${s.deadlineSeconds} s)`,
    ),
  );
  const uncompensated = rowsOf(
    await tx.execute(sql`
      select id, user_id, reason, wallet_undone, storage_undone, extract(epoch from now() - updated_at) as age_seconds,
             count(*) over () as total
      from registry.orders
      where status = 'rejected' and not (wallet_undone and storage_undone)
        and updated_at < now() - make_interval(secs => ${s.compensationDeadlineSeconds})
      order by updated_at limit ${LISTED}`),
  );
  out.addCounted(
    "compensations not confirmed",
    Number(uncompensated[0]?.total ?? 0),
    uncompensated.map((r) => {
      const waiting = [r.wallet_undone ? null : "wallet", r.storage_undone ? null : "storage"].filter(Boolean).join(" and ");
      return (
        `order ${r.id} (user ${r.user_id}, rejected: ${r.reason}): compensation still pending, no confirmation from ${waiting} ` +
        `${Math.round(Number(r.age_seconds))} s after the last change (deadline ${s.compensationDeadlineSeconds} s)`
      );
    }),
  );
}

/** Orders registry heard of but never made; each answered within its grace (plus the sweeper's slack). */
async function unknownOrders(tx: Executor, out: Out, s: RegistryAuditSettings): Promise<RegistryAuditReport["facts"]["unknown_orders"]> {
  const rows = rowsOf(
    await tx.execute(sql`
      select u.order_id, u.service, u.answered_at is not null as answered, o.id is not null as made,
             extract(epoch from now() - u.first_seen_at) as age_seconds
      from registry.unknown_orders u left join registry.orders o on o.id = u.order_id order by u.first_seen_at`),
  );
  const late = rows.filter((r) => !r.answered && !r.made && Number(r.age_seconds) > s.unknownOrderGraceSeconds + SWEEP_SLACK_SECONDS);
  for (const r of late) {
    out.add(
      "unknown orders not answered",
      `unknown order ${r.order_id} (first heard of from ${r.service} ${Math.round(Number(r.age_seconds))} s ago) not answered with unknown_order`,
    );
  }
  return rows
    .filter((r) => !r.made)
    .map((r) => ({ order_id: String(r.order_id), service: String(r.service), answered: Boolean(r.answered) }));
}

/**
 * Every order with its status, compensation, total and lines (two plain scans, joined here: no
 * plan can go quadratic on tables the planner has no statistics for yet), checking on the way
 * that each order has lines, its total is their sum, its status is known, a completed one had
 * both steps succeed, and no line is without an order.
 */
async function orderFacts(tx: Executor, out: Out): Promise<RegistryAuditReport["facts"]["orders"]> {
  const orders = rowsOf(
    await tx.execute(sql`
      select id, user_id, status, total_cents, wallet_done, storage_done, wallet_undone and storage_undone as undone
      from registry.orders`),
  );
  const lines = rowsOf(await tx.execute(sql`select order_id, product_id, quantity, unit_price_cents from registry.order_items`));
  const byOrder = new Map<string, { items: AuditItem[]; sumCents: number }>();
  for (const l of lines) {
    const id = String(l.order_id);
    let entry = byOrder.get(id);
    if (!entry) byOrder.set(id, (entry = { items: [], sumCents: 0 }));
    const quantity = Number(l.quantity);
    entry.items.push({ product_id: Number(l.product_id), quantity });
    entry.sumCents += quantity * Number(l.unit_price_cents);
  }
  const facts = orders.map((o) => {
    const id = String(o.id);
    const entry = byOrder.get(id);
    byOrder.delete(id);
    const problems = orderProblems(o, entry);
    if (problems.length > 0) out.add("orders", `order ${id} (${o.status}): ${problems.join("; ")}`);
    const status: Status = o.status === "completed" || o.status === "rejected" ? o.status : "pending";
    return {
      id,
      user_id: Number(o.user_id),
      status,
      compensation: status === "rejected" ? (o.undone ? ("done" as const) : ("pending" as const)) : null,
      total_cents: Number(o.total_cents),
      items: entry?.items ?? [],
    };
  });
  // What is left are lines of orders that do not exist.
  for (const id of byOrder.keys()) out.add("order lines without an order", `order lines for order ${id}, which does not exist`);
  return facts;
}

/** What is wrong with one order row and its lines. */
function orderProblems(o: Record<string, unknown>, entry: { items: AuditItem[]; sumCents: number } | undefined): string[] {
  const problems = [];
  const total = Number(o.total_cents);
  if (!entry) problems.push("no lines");
  else {
    if (entry.sumCents !== total) problems.push(`total ${total} != its lines' ${entry.sumCents}`);
    const bad = entry.items.find((i) => i.quantity <= 0);
    if (bad) problems.push(`a line of ${bad.quantity} units of product ${bad.product_id}`);
  }
  if (total < 0) problems.push(`negative total ${total}`);
  if (!["pending", "completed", "rejected"].includes(String(o.status))) problems.push(`unknown status ${o.status}`);
  if (o.status === "completed" && !(o.wallet_done && o.storage_done)) problems.push("completed without both steps");
  return problems;
}
