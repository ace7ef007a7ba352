/** What an operator asks of registry's orders: how many are in each state, and which sagas are stuck. */
import { asc, count, sql } from "drizzle-orm";
import type { Database } from "../../src/db/database";
import { type ORDER_STATUSES, orders, unknownOrders } from "./schema";
import { SWEEP_SLACK_MS } from "./sweepers";

/** How many orders are in each state (and reason): counters that survive restarts, read from the table. */
export async function orderCounts(db: Database) {
  const rows = await db.read((q) =>
    q
      .select({
        status: orders.status,
        reason: orders.reason,
        compensation: sql<
          string | null
        >`case when ${orders.status} <> 'rejected' then null when ${orders.walletUndone} and ${orders.storageUndone} then 'done' else 'pending' end`,
        n: count(),
      })
      .from(orders)
      .groupBy(sql`1, 2, 3`),
  );
  const [unknown] = await db.read((q) => q.select({ n: count() }).from(unknownOrders));
  return { orders: rows, unknownOrders: unknown?.n ?? 0 };
}

/** A saga whose outcome or compensations are overdue. */
export interface StuckSaga {
  order_id: string;
  status: (typeof ORDER_STATUSES)[number];
  reason: string | null;
  /** `outcome`: still pending past the deadline; `compensation`: rejected, but a participant has not confirmed its undoing. */
  overdue: "outcome" | "compensation";
  /** Participants that have not answered. */
  waiting_for: ("wallet" | "storage")[];
  created_at: string;
  updated_at: string;
  overdue_seconds: number;
}

/**
 * Orders still pending `graceMs` (default: the sweeper's slack, as the audit counts it) past
 * the deadline (the sweeper should have rejected them), and rejected orders whose compensations
 * are not all confirmed `compensationMs` after the rejection.
 */
export async function stuckSagas(
  db: Database,
  { graceMs = SWEEP_SLACK_MS, ...opts }: { deadlineMs: number; graceMs?: number; compensationMs: number; limit: number },
): Promise<StuckSaga[]> {
  const secs = (ms: number) => sql`make_interval(secs => ${ms / 1000})`;
  const rows = await db.read((q) =>
    q
      .select({
        o: orders,
        overdueSeconds: sql<string>`extract(epoch from now() - case when ${orders.status} = 'pending' then ${orders.createdAt} + ${secs(opts.deadlineMs)} else ${orders.updatedAt} end)`,
      })
      .from(orders)
      .where(
        sql`(${orders.status} = 'pending' and ${orders.createdAt} < now() - ${secs(opts.deadlineMs + graceMs)})
          or (${orders.status} = 'rejected' and not (${orders.walletUndone} and ${orders.storageUndone}) and ${orders.updatedAt} < now() - ${secs(opts.compensationMs)})`,
      )
      .orderBy(asc(orders.seq))
      .limit(opts.limit),
  );
  return rows.map(({ o, overdueSeconds }) => {
    const waiting: ("wallet" | "storage")[] = [];
    if (o.status === "pending") {
      if (!o.walletDone) waiting.push("wallet");
      if (!o.storageDone) waiting.push("storage");
    } else {
      if (!o.walletUndone) waiting.push("wallet");
      if (!o.storageUndone) waiting.push("storage");
    }
    return {
      order_id: o.id,
      status: o.status,
      reason: o.reason,
      overdue: o.status === "pending" ? ("outcome" as const) : ("compensation" as const),
      waiting_for: waiting,
      created_at: o.createdAt.toISOString(),
      updated_at: o.updatedAt.toISOString(),
      overdue_seconds: Math.max(0, Math.round(Number(overdueSeconds))),
    };
  });
}
