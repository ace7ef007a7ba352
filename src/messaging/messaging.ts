/** Wires a module's outbox relay, consumer group, retention and admin routes in one call. */
import type { Bus, BusRecord } from "../bus/bus";
import type { Topics } from "../contracts/topics";
import type { Database } from "../db/database";
import { type PruneJob, type Retention, startRetention } from "../db/retention";
import type { HealthCheck } from "../http/health";
import type { Router } from "../http/router";
import type { ModuleContext } from "../module";
import { messagingSystem } from "../tracing/spans";
import { countBatch } from "../work-counters";
import { adminRouter } from "./admin";
import { messagingGauges, outboxBacklog } from "./gauges";
import { type Consumers, createMessageConsumer, type MessageConsumer } from "./message-consumer";
import { consumerMetrics, messagingMetrics, relayLeadingGauge, type TopicCounters } from "./metrics";
import { type Enqueue, type OutboxWriter, outboxWriter } from "./outbox";
import { type OutboxRelay, startOutboxRelay } from "./outbox-relay";
import { messagingPruneJobs, type RetentionConfig } from "./retention";
import type { MessagingTables } from "./tables";

/** Settings a module's messaging needs from its config. */
export interface MessagingConfig extends RetentionConfig {
  consumer_group: string;
  topics: Topics;
  outbox_poll_ms: number;
  /** /health/ready fails while more outbox rows than this wait to be published. */
  ready_max_outbox_backlog: number;
}

/** A module's messaging: enqueue in a transaction; the relay wakes when it commits. */
export interface Messaging {
  enqueue: Enqueue;
  /** The module's outbox writer (enqueue, and the insert to join a one-statement change). */
  outbox: OutboxWriter;
  /** GET /admin/dead-letters and POST /admin/dead-letters/{id}/redrive, to mount in the module's router. */
  admin: Router;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Readiness: fails while the outbox backlog is over `ready_max_outbox_backlog`. */
  ready: HealthCheck;
}

/**
 * Subscribes `consumers` to `consume` under the module's consumer group and prepares its outbox
 * relay and the pruning of its messaging tables (plus `extraPruning`, the module's own jobs).
 * Registers the messaging families in `ctx.metrics` (see metrics.ts and gauges.ts).
 */
export function setUpMessaging(
  ctx: ModuleContext<MessagingConfig>,
  tables: MessagingTables,
  consumers: Consumers,
  consume: readonly (keyof Topics)[],
  extraPruning: PruneJob[] = [],
): Messaging {
  const { config, db, bus, log } = ctx;
  const system = messagingSystem(bus.kind);
  const topics = consume.map((t) => config.topics[t]);
  let relay: OutboxRelay | null = null;
  let retention: Retention | null = null;
  const outbox = outboxWriter(tables, config.topics, () => relay?.nudge(), { writePrevious: ctx.writePrevious, system });
  const metrics = messagingMetrics(ctx.metrics, topics);
  const consumer = createMessageConsumer({
    db,
    group: config.consumer_group,
    tables,
    outbox,
    consumers,
    log: log.child("consumer"),
    signer: ctx.signing ?? null,
    system,
    onDeadLetter: (topic) => metrics.deadLettered.inc({ topic }),
  });
  subscribe(bus, { group: config.consumer_group, topics }, consumer, metrics);
  consumerMetrics(ctx.metrics, consumer.stats);
  messagingGauges(ctx.metrics, db, tables, topics);
  relayLeadingGauge(ctx.metrics, () => relay?.leading() ?? false);
  const inboxWindowMs = config.inbox_retention_hours * 3600 * 1000;
  return {
    enqueue: outbox.enqueue,
    outbox,
    admin: adminRouter({ db, table: tables.deadLetters, consumer, inboxWindowMs, log: log.child("dead-letters") }),
    async start() {
      relay ??= await startRelay(ctx, tables, (records) => metrics.countRecords(metrics.produced, records));
      retention ??= startRetention(db, [...messagingPruneJobs(tables, config), ...extraPruning], log.child("retention"));
    },
    async stop() {
      await retention?.stop();
      await relay?.stop();
    },
    ready: () => backlogUnder(db, tables, config.ready_max_outbox_backlog),
  };
}

/** Hands the group's batches to `consumer`; the bus commits past the records it says it finished: those are consumed. */
function subscribe(bus: Bus, sub: { group: string; topics: string[] }, consumer: MessageConsumer, metrics: TopicCounters): void {
  bus.subscribe({
    ...sub,
    handler: async (records) => {
      countBatch(records.length);
      const done = await consumer.handle(records);
      metrics.countRecords(metrics.consumed, records.slice(0, done));
      return done;
    },
  });
}

/** The module's outbox relay, telling `onPublished` of the records the bus acknowledged. */
function startRelay(
  ctx: ModuleContext<MessagingConfig>,
  tables: MessagingTables,
  onPublished: (records: BusRecord[]) => void,
): Promise<OutboxRelay> {
  const { db, bus, config, log } = ctx;
  return startOutboxRelay({
    db,
    bus,
    tables,
    pollMs: config.outbox_poll_ms,
    log: log.child("outbox"),
    signer: ctx.signing ?? null,
    onPublished,
  });
}

/** Readiness: throws while more than `max` outbox rows wait to be published. */
async function backlogUnder(db: Database, tables: MessagingTables, max: number): Promise<void> {
  const backlog = await outboxBacklog(db, tables);
  if (backlog > max) throw new Error(`outbox backlog ${backlog} is over ready_max_outbox_backlog (${max})`);
}
