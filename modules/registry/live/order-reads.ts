/** The reads behind the live feed: orders with their timelines, and the events since a cursor. */
import { asc, desc, gt, inArray, max } from "drizzle-orm";
import type { Database } from "../../../src/db/database";
import { orderEvents, orderItems, orders } from "../schema";
import { orderView, type OrderView } from "../service";

/** An order as the live feed sends it: its timeline, and `version`, the id of its latest timeline entry. */
export type LiveOrder = OrderView & {
  timeline: { at: string; service: string; step: string; detail: string | null }[];
  version: number;
};

/** The highest timeline entry id so far (0 when there is none). */
export async function latestEventId(db: Database): Promise<number> {
  const [row] = await db.read((q) => q.select({ id: max(orderEvents.id) }).from(orderEvents));
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

/** The `limit` newest orders, or those of `ids` (newest first), each with its items and timeline. */
export async function liveOrders(db: Database, pick: { newest: number } | { ids: string[] }): Promise<LiveOrder[]> {
  return db.read(async (r) => {
    const rows =
      "ids" in pick
        ? pick.ids.length === 0
          ? []
          : await r.select().from(orders).where(inArray(orders.id, pick.ids)).orderBy(desc(orders.seq))
        : await r.select().from(orders).orderBy(desc(orders.seq)).limit(pick.newest);
    if (rows.length === 0) return [];
    const ids = rows.map((o) => o.id);
    const items = await r.select().from(orderItems).where(inArray(orderItems.orderId, ids));
    const events = await r.select().from(orderEvents).where(inArray(orderEvents.orderId, ids)).orderBy(asc(orderEvents.id));
    return rows.map((o) => {
      const timeline = events.filter((e) => e.orderId === o.id);
      return {
        ...orderView(o, items.filter((i) => i.orderId === o.id)),
        timeline: timeline.map((e) => ({ at: e.at.toISOString(), service: e.service, step: e.step, detail: e.detail })),
        version: timeline.at(-1)?.id ?? 0,
      };
    });
  });
}
