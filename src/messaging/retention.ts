/** The pruning jobs of a module's messaging tables (inbox, outbox, dead letters), by its retention settings. */
import { eq, isNull } from "drizzle-orm";
import type { PruneJob } from "../db/retention";
import type { MessagingTables } from "./tables";

/** Retention windows of a module's messaging tables (ModuleBaseSchema in src/config/module-config.ts). */
export interface RetentionConfig {
  inbox_retention_hours: number;
  outbox_retention_hours: number;
  dead_letter_retention_days: number;
  unresolved_dead_letter_retention_days: number;
}

const HOUR_MS = 3600 * 1000;
const DAY_MS = 24 * HOUR_MS;

/** The pruning jobs for a module's messaging tables under `config`. */
export function messagingPruneJobs(tables: MessagingTables, config: RetentionConfig): PruneJob[] {
  const { inbox, outbox, deadLetters } = tables;
  return [
    { name: "inbox", table: inbox, key: inbox.messageId, at: inbox.processedAt, olderThanMs: config.inbox_retention_hours * HOUR_MS },
    {
      name: "outbox",
      table: outbox,
      key: outbox.seq,
      at: outbox.publishedAt,
      olderThanMs: config.outbox_retention_hours * HOUR_MS,
      where: eq(outbox.state, "published"),
    },
    {
      name: "resolved_dead_letters",
      table: deadLetters,
      key: deadLetters.id,
      at: deadLetters.resolvedAt,
      olderThanMs: config.dead_letter_retention_days * DAY_MS,
    },
    {
      name: "unresolved_dead_letters",
      table: deadLetters,
      key: deadLetters.id,
      at: deadLetters.receivedAt,
      olderThanMs: config.unresolved_dead_letter_retention_days * DAY_MS,
      where: isNull(deadLetters.resolvedAt),
    },
  ];
}
