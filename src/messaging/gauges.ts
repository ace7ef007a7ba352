/**
 * Gauges read from a module's messaging tables at scrape time, so they survive restarts and
 * agree across processes (the consumer's counters are per-process rates).
 */
import { count, isNull, ne, sql } from "drizzle-orm";
import type { Database } from "../db/database";
import type { MetricsRegistry } from "../metrics/registry";
import { tableGauges } from "../metrics/table-gauges";
import type { MessagingTables } from "./tables";

/** What one scrape reads from the messaging tables. */
interface MessagingSnapshot {
  letters: { topic: string; dead: boolean; n: number }[];
  backlog: { state: string; n: number; age: number }[];
}

/** Rows of `tables.outbox` not published yet (pending or in flight). */
export async function outboxBacklog(db: Database, tables: MessagingTables): Promise<number> {
  const [row] = await db.read((q) => q.select({ n: count() }).from(tables.outbox).where(ne(tables.outbox.state, "published")));
  return row?.n ?? 0;
}

/**
 * `shop_dead_letters{topic,state}`: dead letters by topic, still dead or resolved by a redrive;
 * `shop_outbox_backlog{state}`: rows not published yet (pending, in_flight); `shop_outbox_pending`
 * their sum; `shop_outbox_oldest_unpublished_seconds`: the age of the oldest of them (0 when none).
 * Two queries per scrape (dead letters, outbox backlog), started together and shared by the four families.
 * `consumed`: the topics the module reads, reported at 0 before any dead letter.
 */
export function messagingGauges(registry: MetricsRegistry, db: Database, tables: MessagingTables, consumed: string[] = []): void {
  const { deadLetters, outbox } = tables;
  const read = (): Promise<MessagingSnapshot> =>
    db.read(async (q) => {
      const [letters, backlog] = await Promise.all([
        q
          .select({ topic: deadLetters.topic, dead: sql<boolean>`${isNull(deadLetters.resolvedAt)}`, n: count() })
          .from(deadLetters)
          .groupBy(deadLetters.topic, isNull(deadLetters.resolvedAt)),
        q
          .select({
            state: outbox.state,
            n: count(),
            age: sql<number>`coalesce(extract(epoch from now() - min(${outbox.createdAt})), 0)::double precision`,
          })
          .from(outbox)
          .where(ne(outbox.state, "published"))
          .groupBy(outbox.state),
      ]);
      return { letters, backlog: backlog.map((r) => ({ state: r.state, n: r.n, age: Number(r.age) })) };
    });
  tableGauges<MessagingSnapshot>(registry, read, [
    {
      name: "shop_dead_letters",
      help: "Dead letters by topic: still dead, or resolved by a redrive",
      labelNames: ["topic", "state"],
      values: ({ letters }) => {
        const byTopic = new Map<string, { dead: number; resolved: number }>(consumed.map((topic) => [topic, { dead: 0, resolved: 0 }]));
        for (const r of letters) {
          const entry = byTopic.get(r.topic) ?? { dead: 0, resolved: 0 };
          entry[r.dead ? "dead" : "resolved"] += r.n;
          byTopic.set(r.topic, entry);
        }
        return [...byTopic].flatMap(([topic, n]) => [
          { labels: { topic, state: "dead" }, value: n.dead },
          { labels: { topic, state: "resolved" }, value: n.resolved },
        ]);
      },
    },
    {
      name: "shop_outbox_backlog",
      help: "Outbox rows not published yet, by state (pending: not claimed; in_flight: the bus has not confirmed them)",
      labelNames: ["state"],
      values: ({ backlog }) =>
        (["pending", "in_flight"] as const).map((state) => ({ labels: { state }, value: backlog.find((r) => r.state === state)?.n ?? 0 })),
    },
    {
      name: "shop_outbox_pending",
      help: "Outbox rows not published yet (the sum of shop_outbox_backlog)",
      values: ({ backlog }) => [{ value: backlog.reduce((sum, r) => sum + r.n, 0) }],
    },
    {
      name: "shop_outbox_oldest_unpublished_seconds",
      help: "Age of the oldest outbox row not published yet (0 when none)",
      values: ({ backlog }) => [{ value: Math.round(Math.max(0, ...backlog.map((r) => r.age)) * 1000) / 1000 }],
    },
  ]);
}
