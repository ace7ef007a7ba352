/**
 * The saga as registry follows it: each participant's success, rejection and compensation moves
 * an order towards its final state, noted on its timeline.
 */
import { and, asc, eq, type SQL, sql } from "drizzle-orm";
import { createMessage, type OrderCompensated, type OrderRejected, type StepSucceeded } from "../../src/contracts";
import { anyOf, insertMany, runAll, updateMany } from "../../src/db/bulk";
import { afterCommit, type Executor } from "../../src/db/database";
import type { Enqueue } from "../../src/messaging/outbox";
import {
  activeContext,
  activeTraceparent,
  contextOf,
  inContext,
  linkTo,
  markSpan,
  type TraceCarrier,
  tracingOn,
} from "../../src/tracing/spans";
import { orderEvents, orders, unknownOrders } from "./schema";

/** Told, once the transaction committed, that an order reached its final state `seconds` after it was placed. */
export type SagaEnded = (status: "completed" | "rejected", seconds: number) => void;

/** Seconds from an order's creation to now (the database's clock, like created_at's default). */
export const sagaSeconds = sql<number>`extract(epoch from now() - ${orders.createdAt})::double precision`;

/** StepSucceeded: note the step once; complete the order when wallet and storage both succeeded (recordSuccesses with one). */
export async function recordSuccess(tx: Executor, step: StepSucceeded, ended?: SagaEnded): Promise<void> {
  await runAll(tx, await recordSuccesses(tx, [{ step, ended }]));
}

/**
 * StepSucceeded, many at once, in delivery order, as recordSuccess would one by one: one statement
 * reads (and locks, in id order) the orders, their flags and statuses are worked out here; the
 * writes (the orders, their timeline entries, the orders registry never made) come back for the
 * consumer to run in one statement.
 */
export async function recordSuccesses(
  tx: Executor,
  run: { step: StepSucceeded; ended?: SagaEnded; trace?: TraceCarrier }[],
): Promise<SQL[]> {
  const steps = run.filter((r) => r.step.service !== "registry");
  if (steps.length === 0) return [];
  const ids = [...new Set(steps.map((r) => r.step.order_id))].sort();
  const read = await tx
    .select({ id: orders.id, status: orders.status, walletDone: orders.walletDone, storageDone: orders.storageDone, seconds: sagaSeconds })
    .from(orders)
    .where(anyOf(orders.id, ids, "uuid"))
    .orderBy(asc(orders.id))
    .for("update");
  const byId = new Map(read.map((o) => [o.id, o]));
  const changed = new Set<string>();
  const events: (typeof orderEvents.$inferInsert)[] = [];
  const unknown: (typeof unknownOrders.$inferInsert)[] = [];
  for (const { step, ended, trace } of steps) {
    const service = step.service as "wallet" | "storage";
    const order = byId.get(step.order_id);
    if (!order) {
      // Registry never made this order: it must be undone (after a grace, by rejectUnknownOrders).
      unknown.push({ orderId: step.order_id, service, traceparent: trace?.traceparent ?? activeTraceparent() });
      continue;
    }
    const flag = service === "wallet" ? "walletDone" : "storageDone";
    if (order[flag]) continue; // recorded already
    order[flag] = true;
    changed.add(order.id);
    events.push({ orderId: order.id, service, step: service === "wallet" ? "paid" : "reserved" });
    if (order.status === "pending" && order.walletDone && order.storageDone) {
      order.status = "completed";
      const decision = markDecision(order.id, "completed", null, trace);
      events.push({ orderId: order.id, service: "registry", step: "completed" });
      // The decision's line is written in the decision's span: it carries the order's trace id.
      if (ended) afterCommit(tx, () => inContext(decision, () => ended("completed", Number(order.seconds))));
    }
  }
  if (changed.size === 0 && unknown.length === 0) return [];
  const rows = [...changed].map((id) => byId.get(id) as (typeof read)[number]);
  return [
    updateMany(orders, ["id", "status", "walletDone", "storageDone"], rows, sql`updated_at = now()`),
    insertMany(orderEvents, ["orderId", "service", "step"], events),
    insertMany(unknownOrders, ["orderId", "service", "traceparent"], unknown, sql`on conflict do nothing`),
  ];
}

/**
 * OrderRejected by a participant: the first rejection decides a pending order, and registry
 * announces its decision (OrderRejected in its own name) so the participants undo their parts:
 * they act on registry's word only, so a rejection of an order already completed undoes nothing.
 * Every rejection is on the timeline. A participant that rejects did nothing for the order, so it
 * has nothing to undo.
 */
export async function recordRejection(tx: Executor, enqueue: Enqueue, rejection: OrderRejected, ended?: SagaEnded): Promise<void> {
  if (rejection.service === "registry") return;
  const undone = rejection.service === "wallet" ? "walletUndone" : "storageUndone";
  const undoneFlag = rejection.service === "wallet" ? orders.walletUndone : orders.storageUndone;
  const [decided] = await tx
    .update(orders)
    .set({ status: "rejected", reason: rejection.reason, updatedAt: new Date(), [undone]: true })
    .where(and(eq(orders.id, rejection.order_id), eq(orders.status, "pending")))
    .returning({ id: orders.id, seconds: sagaSeconds });
  if (decided) {
    const decision = markDecision(decided.id, "rejected", rejection.reason);
    if (ended) afterCommit(tx, () => inContext(decision, () => ended("rejected", Number(decided.seconds))));
    const message = `${rejection.service}: ${rejection.message}`.slice(0, 500);
    // Announced from the decision: the compensations hang from it in the order's trace.
    await inContext(decision, () =>
      enqueue(tx, createMessage("OrderRejected", { order_id: decided.id, service: "registry", reason: rejection.reason, message })),
    );
  } else {
    // Decided already (or never made): only note, once, that this participant did nothing.
    const [noted] = await tx
      .update(orders)
      .set({ [undone]: true })
      .where(and(eq(orders.id, rejection.order_id), eq(undoneFlag, false)))
      .returning({ id: orders.id });
    if (!noted) {
      // Heard already (a replay under a new message id), or an order registry never made.
      await noteIfUnknown(tx, rejection.order_id, rejection.service);
      return;
    }
  }
  await tx.insert(orderEvents).values({
    orderId: rejection.order_id,
    service: rejection.service,
    step: "rejected",
    detail: `${rejection.reason}: ${rejection.message}`,
  });
}

/** OrderCompensated: a participant undid its part of a rejected order (or had nothing to undo); noted once. */
export async function recordCompensation(tx: Executor, c: OrderCompensated): Promise<void> {
  const flag = c.service === "wallet" ? orders.walletUndone : orders.storageUndone;
  const [order] = await tx
    .update(orders)
    .set({ [c.service === "wallet" ? "walletUndone" : "storageUndone"]: true, updatedAt: new Date() })
    .where(and(eq(orders.id, c.order_id), eq(flag, false)))
    .returning({ id: orders.id });
  // Already noted, or an order registry never made (its undoing is the participants' business: no answer, no loop).
  if (!order) return;
  const detail =
    c.action === "refunded" ? `${c.amount} cents` : c.action === "released" ? `${c.amount} ${c.amount === 1 ? "unit" : "units"}` : null;
  await tx.insert(orderEvents).values({ orderId: order.id, service: c.service, step: c.action, detail });
}

/** A participant acted on an order registry may never have made: remember it, to reject it after a grace. */
async function noteIfUnknown(tx: Executor, orderId: string, service: string): Promise<void> {
  const [known] = await tx.select({ id: orders.id }).from(orders).where(eq(orders.id, orderId));
  if (known) return;
  await tx.insert(unknownOrders).values({ orderId, service, traceparent: activeTraceparent() }).onConflictDoNothing();
}

/**
 * Registry's decision on an order, as a span of no duration (tracing on) in the order's trace:
 * the child of `trace` (the message that decided it) or else of the active span. Returns its
 * context, for the messages that announce the decision.
 */
export function markDecision(orderId: string, status: "completed" | "rejected", reason: string | null, trace?: TraceCarrier, by?: string) {
  if (!tracingOn()) return undefined;
  const attributes: Record<string, string> = { "shop.order_id": orderId, "shop.order.status": status };
  if (reason) attributes["shop.order.reason"] = reason;
  if (by) attributes["shop.decided_by"] = by;
  return markSpan(`order ${status}`, {
    parent: trace?.traceparent ? contextOf(trace) : undefined,
    attributes,
    links: by ? linkTo(activeContext()) : [],
  });
}
