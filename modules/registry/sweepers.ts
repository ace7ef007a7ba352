/** Registry's sweeps: answering the orders it never made, and rejecting the orders that ran out of time. */
import { and, eq, inArray, isNull, lt, sql } from "drizzle-orm";
import { createMessage } from "../../src/contracts";
import { afterCommit, type Database } from "../../src/db/database";
import type { Logger } from "../../src/log";
import { createLoop } from "../../src/loop";
import type { Enqueue } from "../../src/messaging/outbox";
import { inContext, inSpan, SpanKind } from "../../src/tracing/spans";
import { markDecision, type SagaEnded, sagaSeconds } from "./saga";
import { orderEvents, orders, unknownOrders } from "./schema";

/** The most orders (or unknown orders) one sweep rejects in one transaction. */
const EXPIRY_BATCH = 500;

/**
 * How long past its deadline (or an unknown order past its grace) an order may wait for the
 * sweeper before it counts as stuck: the sweeper looks at least every 5 s, and a sweep under
 * load takes its time. The stuck-sagas view and the audit both use it.
 */
export const SWEEP_SLACK_MS = 10_000;

/**
 * Rejects (`unknown_order`) the orders a participant acted on that registry never made, once each,
 * `graceMs` after the first word of them; returns their ids. Both times are the database's clock, so
 * there is no skew to absorb: the grace is a margin for a participant's message that overtook its
 * order's commit (the outbox rules that out today: an order is committed before its OrderCreated is
 * published), and the sweep looks for the order again, so one stored by then is dropped, not rejected.
 */
export async function rejectUnknownOrders(db: Database, enqueue: Enqueue, graceMs: number): Promise<string[]> {
  const due = and(isNull(unknownOrders.answeredAt), lt(unknownOrders.firstSeenAt, sql`now() - make_interval(secs => ${graceMs / 1000})`));
  const [any] = await db.read((q) => q.select({ id: unknownOrders.orderId }).from(unknownOrders).where(due).limit(1));
  if (!any) return [];
  return sweepSpan("sweep unknown orders", () =>
    db.transaction(async (tx) => {
      const rows = await tx
        .select({
          id: unknownOrders.orderId,
          service: unknownOrders.service,
          traceparent: unknownOrders.traceparent,
          known: sql<boolean>`exists (select 1 from ${orders} where ${orders.id} = ${unknownOrders.orderId})`,
        })
        .from(unknownOrders)
        .where(due)
        .limit(EXPIRY_BATCH)
        .for("update", { skipLocked: true });
      if (rows.length === 0) return [];
      await tx
        .update(unknownOrders)
        .set({ answeredAt: new Date() })
        .where(
          inArray(
            unknownOrders.orderId,
            rows.map((r) => r.id),
          ),
        );
      const unknown = rows.filter((r) => !r.known);
      for (const r of unknown) {
        const message = `registry has no order ${r.id} (first heard of from ${r.service})`;
        // In the trace of the message that revealed the order: its undoing follows there.
        const decided = markDecision(r.id, "rejected", "unknown_order", { traceparent: r.traceparent ?? undefined }, "unknown order sweep");
        await inContext(decided, () =>
          enqueue(tx, createMessage("OrderRejected", { order_id: r.id, service: "registry", reason: "unknown_order", message })),
        );
      }
      return unknown.map((r) => r.id);
    }),
  );
}

/** A sweep that found work: its transaction in a span of its own (tracing on); each order it decides is marked in that order's trace, linked to it. */
const sweepSpan = (name: string, fn: () => Promise<string[]>) =>
  inSpan(name, { kind: SpanKind.INTERNAL }, async (span) => {
    const ids = await fn();
    span?.setAttribute("shop.orders_decided", ids.length);
    return ids;
  });

/** Milliseconds until the oldest pending order reaches the deadline (0 if it has), or null if none is pending. */
async function nextExpiryInMs(db: Database, deadlineMs: number): Promise<number | null> {
  const [row] = await db.read((q) =>
    q
      .select({ ageMs: sql<string | null>`extract(epoch from now() - min(${orders.createdAt})) * 1000` })
      .from(orders)
      .where(eq(orders.status, "pending")),
  );
  if (row?.ageMs === null || row?.ageMs === undefined) return null;
  return Math.max(0, deadlineMs - Number(row.ageMs));
}

/** Rejects pending orders older than the deadline and tells the participants; returns their ids. */
export async function rejectExpiredOrders(db: Database, enqueue: Enqueue, deadlineMs: number, ended?: SagaEnded): Promise<string[]> {
  // The database's clock, like created_at's default: app and database clocks may differ.
  const cutoff = sql`now() - make_interval(secs => ${deadlineMs / 1000})`;
  const overdue = and(eq(orders.status, "pending"), lt(orders.createdAt, cutoff));
  // Usually nothing is due: one read, no transaction.
  const [any] = await db.read((q) => q.select({ id: orders.id }).from(orders).where(overdue).limit(1));
  if (!any) return [];
  return sweepSpan("sweep expired orders", () =>
    db.transaction(async (tx) => {
      const due = await tx.select({ id: orders.id }).from(orders).where(overdue).limit(EXPIRY_BATCH).for("update", { skipLocked: true });
      if (due.length === 0) return [];
      const expired = await tx
        .update(orders)
        .set({ status: "rejected", reason: "timeout", updatedAt: new Date() })
        .where(
          and(
            inArray(
              orders.id,
              due.map((o) => o.id),
            ),
            eq(orders.status, "pending"),
          ),
        )
        .returning({ id: orders.id, seconds: sagaSeconds, traceparent: orders.traceparent });
      for (const { id, seconds, traceparent } of expired) {
        const message = `no outcome within ${deadlineMs / 1000} s`;
        await tx.insert(orderEvents).values({ orderId: id, service: "registry", step: "rejected", detail: `timeout: ${message}` });
        // In the trace of the request that placed the order: its compensations, and its line, follow there.
        const decided = markDecision(id, "rejected", "timeout", { traceparent: traceparent ?? undefined }, "deadline sweep");
        if (ended) afterCommit(tx, () => inContext(decided, () => ended("rejected", Number(seconds))));
        await inContext(decided, () =>
          enqueue(tx, createMessage("OrderRejected", { order_id: id, service: "registry", reason: "timeout", message })),
        );
      }
      return expired.map((o) => o.id);
    }),
  );
}

/** The sweeps never run closer together than this (a sweep that decided orders asks for the next at once). */
const MIN_SWEEP_GAP_MS = 20;

/** What registry's sweep loop needs. */
interface SweepLoopOptions {
  db: Database;
  enqueue: Enqueue;
  config: { saga_deadline_seconds: number; unknown_order_grace_ms: number };
  log: Logger;
  sagaEnded?: SagaEnded;
}

/**
 * Registry's sweeps on one loop (idle until `start`): unknown orders answered, then expired
 * orders rejected. With nothing pending it looks again every few seconds (orders placed by any
 * process); else it wakes when the oldest is due, and at once after a sweep that decided some.
 */
export function sweepLoop({ db, enqueue, config, log, sagaEnded }: SweepLoopOptions): { start(): void; stop(): Promise<void> } {
  const deadlineMs = config.saga_deadline_seconds * 1000;
  const idleCheckMs = Math.min(5000, Math.max(50, deadlineMs / 2));
  const sweep = async (): Promise<number> => {
    for (const id of await rejectUnknownOrders(db, enqueue, config.unknown_order_grace_ms)) {
      log.warn("unknown order rejected: a participant acted on an order registry never made", { order_id: id });
    }
    const due = await nextExpiryInMs(db, deadlineMs);
    if (due === null) return idleCheckMs;
    if (due > 0) return Math.min(due, idleCheckMs);
    for (const id of await rejectExpiredOrders(db, enqueue, deadlineMs, sagaEnded)) {
      log.warn("order timed out", { order_id: id, deadline_seconds: config.saga_deadline_seconds });
    }
    return 0;
  };
  const loop = createLoop({
    run: async () => Math.max(await sweep(), MIN_SWEEP_GAP_MS),
    every: idleCheckMs,
    failed: (err) => log.warn("deadline sweep failed", { err }),
  });
  return { start: () => loop.runIn(MIN_SWEEP_GAP_MS), stop: () => loop.stop() };
}
