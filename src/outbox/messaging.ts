/** Wires a module's outbox relay, consumer group, retention and admin routes in one call. */
import type { Topics } from "../config";
import type { Sample } from "../http/metrics";
import type { Router } from "../http/router";
import type { ModuleContext } from "../module";
import { adminRouter } from "./admin";
import { messagingGauges } from "./gauges";
import { type Consumers, createMessageConsumer } from "./message-consumer";
import { type Enqueue, outboxWriter } from "./outbox";
import { type OutboxRelay, startOutboxRelay } from "./outbox-relay";
import { messagingPruneJobs, type PruneJob, type RetainedTables, type Retention, type RetentionConfig, startRetention } from "./retention";

/** Settings a module's messaging needs from its config. */
export interface MessagingConfig extends RetentionConfig {
  consumer_group: string;
  topics: Topics;
  outbox_poll_ms: number;
}

/** A module's messaging: enqueue in a transaction; the relay wakes when it commits. */
export interface Messaging {
  enqueue: Enqueue;
  /** GET /admin/dead-letters and POST /admin/dead-letters/{id}/redrive, to mount in the module's router. */
  admin: Router;
  start(): Promise<void>;
  stop(): Promise<void>;
  samples(): Promise<Sample[]>;
}

/**
 * Subscribes `consumers` to `consume` under the module's consumer group and prepares its outbox
 * relay and the pruning of its messaging tables (plus `extraPruning`, the module's own jobs).
 */
export function setUpMessaging(
  ctx: ModuleContext<MessagingConfig>,
  tables: RetainedTables,
  consumers: Consumers,
  consume: readonly (keyof Topics)[],
  extraPruning: PruneJob[] = [],
): Messaging {
  const { config, db, bus, log } = ctx;
  const signer = ctx.signing ?? null;
  let relay: OutboxRelay | null = null;
  let retention: Retention | null = null;
  const outbox = outboxWriter(tables, config.topics, () => relay?.nudge());
  const consumer = createMessageConsumer({
    db,
    group: config.consumer_group,
    tables,
    outbox,
    consumers,
    log: log.child("consumer"),
    signer,
  });
  bus.subscribe({
    group: config.consumer_group,
    topics: consume.map((t) => config.topics[t]),
    handler: consumer.handle,
  });
  const admin = adminRouter({
    db,
    table: tables.deadLetters,
    consumer,
    inboxWindowMs: config.inbox_retention_hours * 3600 * 1000,
    log: log.child("dead-letters"),
  });
  return {
    enqueue: outbox.enqueue,
    admin,
    async start() {
      relay ??= await startOutboxRelay({ db, bus, tables, pollMs: config.outbox_poll_ms, log: log.child("outbox"), signer });
      retention ??= startRetention(db, [...messagingPruneJobs(tables, config), ...extraPruning], log.child("retention"));
    },
    async stop() {
      await retention?.stop();
      await relay?.stop();
    },
    async samples() {
      return [
        ...(await messagingGauges(db, tables)),
        { name: "consumer_batches_total", value: consumer.stats.batches },
        ...Object.entries(consumer.stats)
          .filter(([outcome]) => outcome !== "batches")
          .map(([outcome, value]) => ({ name: "messages_consumed_total", labels: { outcome }, value })),
      ];
    },
  };
}
