/**
 * The messaging families counted in this process: messages consumed, produced and dead-lettered
 * by topic, the consumer's outcomes and batches, and whether this process's relay leads.
 * (Gauges read from the tables are in gauges.ts.)
 */
import { Counter, Gauge } from "prom-client";
import type { BusRecord } from "../bus/bus";
import type { MetricsRegistry } from "../metrics/registry";
import type { MessageConsumer } from "./message-consumer";

/** The per-topic counters (see messagingMetrics). */
export type TopicCounters = ReturnType<typeof messagingMetrics>;

/**
 * Per-topic message counters: `shop_messages_consumed_by_topic_total` (records the consumer group
 * finished: applied, duplicate, ignored or dead-lettered), `shop_messages_produced_total` (outbox
 * rows the bus acknowledged) and `shop_messages_dead_lettered_total`; each consumed topic present at 0.
 */
export function messagingMetrics(registry: MetricsRegistry, consumedTopics: string[]) {
  const counter = (name: string, help: string) => new Counter({ name, help, labelNames: ["topic"], registers: [registry] });
  const metrics = {
    consumed: counter(
      "shop_messages_consumed_by_topic_total",
      "Messages the consumer group finished (applied, duplicate, ignored or dead-lettered), by topic",
    ),
    produced: counter("shop_messages_produced_total", "Messages the outbox relay published and the bus acknowledged, by topic"),
    deadLettered: counter("shop_messages_dead_lettered_total", "Messages the consumer group recorded as dead letters, by topic"),
    /** Adds `records` to `c`, one increment per topic. */
    countRecords(c: Counter<"topic">, records: BusRecord[]) {
      const byTopic = new Map<string, number>();
      for (const r of records) byTopic.set(r.topic, (byTopic.get(r.topic) ?? 0) + 1);
      for (const [topic, n] of byTopic) c.inc({ topic }, n);
    },
  };
  for (const topic of consumedTopics) {
    metrics.consumed.inc({ topic }, 0);
    metrics.deadLettered.inc({ topic }, 0);
  }
  return metrics;
}

/** `shop_messages_consumed_total{outcome}` and `shop_consumer_batches_total`, read from the consumer's stats at scrape time. */
export function consumerMetrics(registry: MetricsRegistry, stats: MessageConsumer["stats"]): void {
  new Counter({
    name: "shop_messages_consumed_total",
    help: "Messages this process's consumer group finished, by outcome (processed, duplicates, ignored, dead; failures: batches that failed)",
    labelNames: ["outcome"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [outcome, value] of Object.entries(stats)) if (outcome !== "batches") this.inc({ outcome }, value);
    },
  });
  new Counter({
    name: "shop_consumer_batches_total",
    help: "Batches this process's consumer group applied",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(stats.batches);
    },
  });
}

/** `shop_outbox_relay_leading`: 1 while `leading()` says this process's relay publishes the module's outbox. */
export function relayLeadingGauge(registry: MetricsRegistry, leading: () => boolean): void {
  new Gauge({
    name: "shop_outbox_relay_leading",
    help: "1 while this process's outbox relay is the one publishing the module's outbox (one process of a module at a time), else 0",
    registers: [registry],
    collect() {
      this.set(leading() ? 1 : 0);
    },
  });
}
