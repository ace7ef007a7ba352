/** Wires a module's outbox relay, consumer group, retention and admin routes in one call. */
import { Counter, Gauge } from "prom-client";
import type { BusRecord } from "../bus/bus";
import type { Topics } from "../contracts/topics";
import type { HealthCheck } from "../http/health";
import type { MetricsRegistry } from "../http/metrics";
import type { Router } from "../http/router";
import type { ModuleContext } from "../module";
import { adminRouter } from "./admin";
import { messagingGauges, outboxBacklog } from "./gauges";
import { type Consumers, createMessageConsumer } from "./message-consumer";
import { type Enqueue, type OutboxWriter, outboxWriter } from "./outbox";
import { type OutboxRelay, startOutboxRelay } from "./outbox-relay";
import { countBatch } from "../work-counters";
import { messagingSystem } from "../tracing/spans";
import { messagingPruneJobs, type PruneJob, type RetainedTables, type Retention, type RetentionConfig, startRetention } from "../db/retention";

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
 * Registers the messaging families in `ctx.metrics` (see messagingMetrics).
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
  const outbox = outboxWriter(tables, config.topics, () => relay?.nudge(), { writePrevious: ctx.writePrevious, system: messagingSystem(bus.kind) });
  const metrics = messagingMetrics(ctx.metrics);
  const consumer = createMessageConsumer({
    db,
    group: config.consumer_group,
    tables,
    outbox,
    consumers,
    log: log.child("consumer"),
    signer,
    system: messagingSystem(bus.kind),
    onDeadLetter: (topic) => metrics.deadLettered.inc({ topic }),
  });
  const topics = consume.map((t) => config.topics[t]);
  for (const topic of topics) {
    metrics.consumed.inc({ topic }, 0);
    metrics.deadLettered.inc({ topic }, 0);
  }
  bus.subscribe({
    group: config.consumer_group,
    topics,
    // The bus commits past the records the handler says it finished: those are consumed.
    handler: async (records) => {
      countBatch(records.length);
      const done = await consumer.handle(records);
      metrics.countRecords(metrics.consumed, records.slice(0, done));
      return done;
    },
  });
  new Counter({
    name: "shop_messages_consumed_total",
    help: "Messages this process's consumer group finished, by outcome (processed, duplicates, ignored, dead; failures: batches that failed)",
    labelNames: ["outcome"],
    registers: [ctx.metrics],
    collect() {
      this.reset();
      for (const [outcome, value] of Object.entries(consumer.stats)) if (outcome !== "batches") this.inc({ outcome }, value);
    },
  });
  new Counter({
    name: "shop_consumer_batches_total",
    help: "Batches this process's consumer group applied",
    registers: [ctx.metrics],
    collect() {
      this.reset();
      this.inc(consumer.stats.batches);
    },
  });
  messagingGauges(ctx.metrics, db, tables, topics);
  new Gauge({
    name: "shop_outbox_relay_leading",
    help: "1 while this process's outbox relay is the one publishing the module's outbox (one process of a module at a time), else 0",
    registers: [ctx.metrics],
    collect() {
      this.set(relay?.leading() ? 1 : 0);
    },
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
    outbox,
    admin,
    async start() {
      relay ??= await startOutboxRelay({
        db,
        bus,
        tables,
        pollMs: config.outbox_poll_ms,
        log: log.child("outbox"),
        signer,
        onPublished: (records) => metrics.countRecords(metrics.produced, records),
      });
      retention ??= startRetention(db, [...messagingPruneJobs(tables, config), ...extraPruning], log.child("retention"));
    },
    async stop() {
      await retention?.stop();
      await relay?.stop();
    },
    async ready() {
      const backlog = await outboxBacklog(db, tables);
      if (backlog > config.ready_max_outbox_backlog) {
        throw new Error(`outbox backlog ${backlog} is over ready_max_outbox_backlog (${config.ready_max_outbox_backlog})`);
      }
    },
  };
}

/**
 * Per-topic message counters: `shop_messages_consumed_by_topic_total` (records the consumer group
 * finished: applied, duplicate, ignored or dead-lettered), `shop_messages_produced_total` (outbox
 * rows the bus acknowledged) and `shop_messages_dead_lettered_total`.
 */
function messagingMetrics(registry: MetricsRegistry) {
  const counter = (name: string, help: string) => new Counter({ name, help, labelNames: ["topic"], registers: [registry] });
  return {
    consumed: counter("shop_messages_consumed_by_topic_total", "Messages the consumer group finished (applied, duplicate, ignored or dead-lettered), by topic"),
    produced: counter("shop_messages_produced_total", "Messages the outbox relay published and the bus acknowledged, by topic"),
    deadLettered: counter("shop_messages_dead_lettered_total", "Messages the consumer group recorded as dead letters, by topic"),
    /** Adds `records` to `c`, one increment per topic. */
    countRecords(c: Counter<"topic">, records: BusRecord[]) {
      const byTopic = new Map<string, number>();
      for (const r of records) byTopic.set(r.topic, (byTopic.get(r.topic) ?? 0) + 1);
      for (const [topic, n] of byTopic) c.inc({ topic }, n);
    },
  };
}
