/**
 * Gauges read from a module's messaging tables at scrape time, so they survive restarts and
 * agree across processes (the consumer's counters are per-process rates).
 */
import { count, isNull, ne, sql } from "drizzle-orm";
import type { Database } from "../db/database";
import type { Sample } from "../http/metrics";
import type { MessagingTables } from "./tables";

/**
 * `dead_letters{topic,state}`: dead letters by topic, still dead or resolved by a redrive;
 * `outbox_backlog{state}`: rows not published yet (pending, in_flight); `outbox_pending` their
 * sum; `outbox_oldest_unpublished_seconds`: the age of the oldest of them (0 when none).
 */
export async function messagingGauges(db: Database, tables: MessagingTables): Promise<Sample[]> {
  const { deadLetters, outbox } = tables;
  const [letters, backlog] = await db.read((q) =>
    Promise.all([
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
    ]),
  );
  const byTopic = new Map<string, { dead: number; resolved: number }>();
  for (const r of letters) {
    const entry = byTopic.get(r.topic) ?? { dead: 0, resolved: 0 };
    entry[r.dead ? "dead" : "resolved"] += r.n;
    byTopic.set(r.topic, entry);
  }
  const backlogOf = (state: string) => backlog.find((r) => r.state === state);
  const oldest = Math.max(0, ...backlog.map((r) => Number(r.age)));
  return [
    ...[...byTopic].flatMap(([topic, n]) => [
      { name: "dead_letters", labels: { topic, state: "dead" }, value: n.dead },
      { name: "dead_letters", labels: { topic, state: "resolved" }, value: n.resolved },
    ]),
    ...(["pending", "in_flight"] as const).map((state) => ({ name: "outbox_backlog", labels: { state }, value: backlogOf(state)?.n ?? 0 })),
    { name: "outbox_pending", value: backlog.reduce((sum, r) => sum + r.n, 0) },
    { name: "outbox_oldest_unpublished_seconds", value: Math.round(oldest * 1000) / 1000 },
  ];
}
