/**
 * The inbox side of a consumed batch: one statement records its messages (a message already
 * there is a duplicate) and, where transactions can overlap, takes the per-order advisory locks.
 */
import { sql } from "drizzle-orm";
import type { Message } from "../contracts";
import { insertMany } from "../db/bulk";
import type { Executor } from "../db/database";
import { rowsOf } from "../db/rows";
import type { MessagingTables } from "./tables";

/** A message as delivered, with the topic it was read from. */
export type Delivery = { message: Message; topic: string };

/** How a consumer group records its deliveries. */
export interface InboxOptions {
  inbox: MessagingTables["inbox"];
  /** The consumer group: it scopes the per-order lock. */
  group: string;
  /** Take an advisory lock per order (transactions may overlap, and no row lock orders them already). */
  lockOrders: boolean;
}

/**
 * Records `wanted` in the inbox and returns, in delivery order, the messages it had not seen.
 * Messages about one order, from any topic, take turns within the consumer group: with
 * `lockOrders`, the same statement also takes an advisory lock per order, in a fixed order (no
 * deadlock), once it found a fresh message.
 */
export async function recordInInbox(tx: Executor, opts: InboxOptions, wanted: Delivery[]): Promise<Message[]> {
  const rows = wanted.map(({ message: m, topic }) => ({ messageId: m.id, type: m.type, topic }));
  const record = insertMany(
    opts.inbox,
    ["messageId", "type", "topic"],
    rows,
    sql`on conflict do nothing returning ${sql.identifier("message_id")}`,
  );
  const keys = opts.lockOrders ? [...new Set(wanted.map((w) => `${opts.group}:${w.message.order_id}`))] : [];
  const inserted = rowsOf(
    await tx.execute(
      opts.lockOrders
        ? sql`with fresh as (${record}) select message_id as id, (select count(*) from (select pg_advisory_xact_lock(h) from (select distinct hashtextextended(k, 0) as h from unnest(${sql.param(keys)}::text[]) as k order by h) as o) as l) as locks from fresh`
        : sql`with fresh as (${record}) select message_id as id from fresh`,
    ),
  );
  const insertedIds = new Set(inserted.map((r) => String(r.id)));
  return wanted.map((w) => w.message).filter((m) => insertedIds.has(m.id));
}
