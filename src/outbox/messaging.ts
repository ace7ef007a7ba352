/** Wires a module's outbox relay and consumer group in one call. */
import type { Topics } from "../config";
import type { Sample } from "../http/metrics";
import type { ModuleContext } from "../module";
import { createMessageConsumer, type MessageHandlers } from "./message-consumer";
import { type Enqueue, outboxWriter } from "./outbox";
import { type OutboxRelay, startOutboxRelay } from "./outbox-relay";
import type { MessagingTables } from "./tables";

/** Settings a module's messaging needs from its config. */
export interface MessagingConfig {
  consumer_group: string;
  topics: Topics;
  outbox_poll_ms: number;
}

/** A module's messaging: enqueue in a transaction, then nudge after commit. */
export interface Messaging {
  enqueue: Enqueue;
  /** Call after a transaction that enqueued messages committed. */
  committed(): void;
  start(): void;
  stop(): Promise<void>;
  samples(): Promise<Sample[]>;
}

/** Subscribes the handlers (built around this module's outbox) to `consume` under the module's consumer group and prepares its relay. */
export function setUpMessaging(
  ctx: ModuleContext<MessagingConfig>,
  tables: MessagingTables,
  handlers: (enqueue: Enqueue) => MessageHandlers,
  consume: readonly (keyof Topics)[],
): Messaging {
  const { config, db, bus, log } = ctx;
  let relay: OutboxRelay | null = null;
  const committed = () => relay?.nudge();
  const enqueue = outboxWriter(tables, config.topics);
  const consumer = createMessageConsumer({
    db,
    group: config.consumer_group,
    tables,
    handlers: handlers(enqueue),
    log: log.child("consumer"),
    afterCommit: committed,
  });
  bus.subscribe({
    group: config.consumer_group,
    topics: consume.map((t) => config.topics[t]),
    handler: consumer.handle,
  });
  return {
    enqueue,
    committed,
    start() {
      relay ??= startOutboxRelay({ db, bus, tables, pollMs: config.outbox_poll_ms, log: log.child("outbox") });
    },
    async stop() {
      await relay?.stop();
    },
    async samples() {
      const pending = relay ? await relay.pending() : 0;
      return [
        { name: "outbox_pending", value: pending },
        ...Object.entries(consumer.stats).map(([outcome, value]) => ({
          name: "messages_consumed_total",
          labels: { outcome },
          value,
        })),
      ];
    },
  };
}
