/** The reads behind the live feed: orders with their timelines, and the events since a cursor. */
import { asc, desc, gt, inArray, lt, max, sql } from "drizzle-orm";
import type { Database } from "../../../src/db/database";
import { orderEvents, orderItems, orders } from "../schema";
import { type OrderView, orderView } from "../views";

/**
 * An order as the live feed sends it: its timeline, `version` (the id of its latest timeline entry),
 * and `trace_id`, the trace of the request that placed it (null when that was not traced).
 */
export type LiveOrder = OrderView & {
  timeline: { at: string; service: string; step: string; detail: string | null }[];
  version: number;
  trace_id: string | null;
};

/** A W3C traceparent's trace id (`00-<trace id>-<span id>-<flags>`); null for none, a malformed one, or the all-zero id. */
export function traceIdOf(traceparent: string | null): string | null {
  const id = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}(?:-|$)/.exec(traceparent ?? "")?.[1];
  return id && !/^0+$/.test(id) ? id : null;
}

/**
 * The highest id of the timeline entries recorded more than `settledMs` ago (0 when there is none):
 * a cursor from there sends the recent changes again (harmless: each carries its version) and
 * still catches an entry of that window whose transaction commits late.
 */
export async function settledEventId(db: Database, settledMs: number): Promise<number> {
  const [row] = await db.read((q) =>
    q
      .select({ id: max(orderEvents.id) })
      .from(orderEvents)
      .where(lt(orderEvents.at, sql`now() - make_interval(secs => ${settledMs / 1000})`)),
  );
  return Number(row?.id ?? 0);
}

/** Timeline entries with an id above `after`, oldest first: which orders changed. */
export async function eventsAfter(db: Database, after: number, limit: number): Promise<{ id: number; orderId: string }[]> {
  return db.read((q) =>
    q
      .select({ id: orderEvents.id, orderId: orderEvents.orderId })
      .from(orderEvents)
      .where(gt(orderEvents.id, after))
      .orderBy(asc(orderEvents.id))
      .limit(limit),
  );
}

/** The `limit` newest orders, or of those with `ids`, each with its items and timeline; newest first. */
export async function liveOrders(db: Database, pick: { limit: number; ids?: string[] }): Promise<LiveOrder[]> {
  return db.read(async (r) => {
    if (pick.ids?.length === 0) return [];
    const rows = await r
      .select()
      .from(orders)
      .where(pick.ids ? inArray(orders.id, pick.ids) : undefined)
      .orderBy(desc(orders.seq))
      .limit(pick.limit);
    if (rows.length === 0) return [];
    const ids = rows.map((o) => o.id);
    const items = await r.select().from(orderItems).where(inArray(orderItems.orderId, ids));
    const events = await r.select().from(orderEvents).where(inArray(orderEvents.orderId, ids)).orderBy(asc(orderEvents.id));
    return rows.map((o) => {
      const timeline = events.filter((e) => e.orderId === o.id);
      return {
        ...orderView(
          o,
          items.filter((i) => i.orderId === o.id),
        ),
        timeline: timeline.map((e) => ({ at: e.at.toISOString(), service: e.service, step: e.step, detail: e.detail })),
        version: timeline.at(-1)?.id ?? 0,
        // On the row already read: no extra query.
        trace_id: traceIdOf(o.traceparent),
      };
    });
  });
}
