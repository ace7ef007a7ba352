/** Wires a module's outbox relay and consumer group in one call. */
import type { Topics } from "../config";
import type { Sample } from "../http/metrics";
import type { ModuleContext } from "../module";
import { type Consumers, createMessageConsumer } from "./message-consumer";
import { type Enqueue, outboxWriter } from "./outbox";
import { type OutboxRelay, startOutboxRelay } from "./outbox-relay";
import type { MessagingTables } from "./tables";

/** Settings a module's messaging needs from its config. */
export interface MessagingConfig {
  consumer_group: string;
  topics: Topics;
  outbox_poll_ms: number;
}

/** A module's messaging: enqueue in a transaction; the relay wakes when it commits. */
export interface Messaging {
  enqueue: Enqueue;
  start(): Promise<void>;
  stop(): Promise<void>;
  samples(): Promise<Sample[]>;
}

/** Subscribes `consumers` to `consume` under the module's consumer group and prepares its outbox relay. */
export function setUpMessaging(
  ctx: ModuleContext<MessagingConfig>,
  tables: MessagingTables,
  consumers: Consumers,
  consume: readonly (keyof Topics)[],
): Messaging {
  const { config, db, bus, log } = ctx;
  let relay: OutboxRelay | null = null;
  const outbox = outboxWriter(tables, config.topics, () => relay?.nudge());
  const consumer = createMessageConsumer({
    db,
    group: config.consumer_group,
    tables,
    outbox,
    consumers,
    log: log.child("consumer"),
  });
  bus.subscribe({
    group: config.consumer_group,
    topics: consume.map((t) => config.topics[t]),
    handler: consumer.handle,
  });
  return {
    enqueue: outbox.enqueue,
    async start() {
      relay ??= await startOutboxRelay({ db, bus, tables, pollMs: config.outbox_poll_ms, log: log.child("outbox") });
    },
    async stop() {
      await relay?.stop();
    },
    async samples() {
      const pending = relay ? await relay.pending() : 0;
      return [
        { name: "outbox_pending", value: pending },
        { name: "consumer_batches_total", value: consumer.stats.batches },
        ...Object.entries(consumer.stats)
          .filter(([outcome]) => outcome !== "batches")
          .map(([outcome, value]) => ({ name: "messages_consumed_total", labels: { outcome }, value })),
      ];
    },
  };
}
