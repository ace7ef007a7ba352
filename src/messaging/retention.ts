/** The pruning jobs of a module's messaging tables (inbox, outbox, dead letters), by its retention settings. */
import { eq, isNull } from "drizzle-orm";
import type { PgColumn, PgTable } from "drizzle-orm/pg-core";
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

/** A table of remembered rejections (src/saga/rejections.ts), described by its shape: plumbing imports no saga code. */
type RememberedRejections = PgTable & { orderId: PgColumn; createdAt: PgColumn };

/** The messaging tables of a module, and its remembered rejections if it is a saga participant. */
export type RetainedTables = MessagingTables & { rejectedOrders?: RememberedRejections };

/** The pruning jobs for a module's messaging tables under `config`. */
export function messagingPruneJobs(tables: RetainedTables, config: RetentionConfig): PruneJob[] {
  const { inbox, outbox, deadLetters, rejectedOrders } = tables;
  const inboxMs = config.inbox_retention_hours * HOUR_MS;
  const jobs: PruneJob[] = [
    { name: "inbox", table: inbox, key: inbox.messageId, at: inbox.processedAt, olderThanMs: inboxMs },
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
  // A late OrderCreated must still find the rejection: keep it as long as a redelivery can come.
  if (rejectedOrders) {
    jobs.push({ name: "rejected_orders", table: rejectedOrders, key: rejectedOrders.orderId, at: rejectedOrders.createdAt, olderThanMs: inboxMs });
  }
  return jobs;
}
