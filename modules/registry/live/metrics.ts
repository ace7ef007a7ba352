/** The live feed's metric families: connected, dropped and refused clients, and what its poller costs. */
import { Counter, Gauge } from "prom-client";
import type { MetricsRegistry } from "../../../src/metrics/registry";
import type { DropReason, FeedObserver, Refusal } from "./order-feed";

const DROP_REASONS: readonly DropReason[] = ["unsent_bytes", "stalled", "shed"];
const REFUSALS: readonly Exclude<Refusal, "stopped">[] = ["too_many_clients", "too_many_clients_from_address"];

/**
 * Registers `shop_live_clients` (read at scrape time from `clients`), `shop_live_clients_dropped_total`
 * and `shop_live_clients_refused_total` (by reason, each present from the start at 0),
 * `shop_live_polls_total`, `shop_live_poll_seconds_total`, `shop_live_orders_sent_total` and
 * `shop_live_poll_failures_total`; returns the observer the feed reports to.
 */
export function liveMetrics(registry: MetricsRegistry, clients: () => number): FeedObserver {
  new Gauge({
    name: "shop_live_clients",
    help: "Clients connected to GET /live/events in this process",
    registers: [registry],
    collect() {
      this.set(clients());
    },
  });
  const polls = new Counter({
    name: "shop_live_polls_total",
    help: "Polls of the live feed for changed orders (only while a client is connected)",
    registers: [registry],
  });
  const seconds = new Counter({
    name: "shop_live_poll_seconds_total",
    help: "Time spent in those polls, reads included",
    registers: [registry],
  });
  const sent = new Counter({
    name: "shop_live_orders_sent_total",
    help: "Changed orders sent to the live clients (each once per poll, whatever the number of clients)",
    registers: [registry],
  });
  const failures = new Counter({
    name: "shop_live_poll_failures_total",
    help: "Polls that failed (the database did not answer); the next poll retries",
    registers: [registry],
  });
  const dropped = new Counter({
    name: "shop_live_clients_dropped_total",
    help: "Live clients dropped because they did not take what was sent: unsent_bytes (over live_max_unsent_bytes), stalled (nothing taken for live_stall_timeout_ms), shed (stuck, to make room for a new client)",
    labelNames: ["reason"],
    registers: [registry],
  });
  const refused = new Counter({
    name: "shop_live_clients_refused_total",
    help: "New live clients refused: too_many_clients (503, live_max_clients), too_many_clients_from_address (429, live_max_clients_per_address)",
    labelNames: ["reason"],
    registers: [registry],
  });
  for (const reason of DROP_REASONS) dropped.inc({ reason }, 0);
  for (const reason of REFUSALS) refused.inc({ reason }, 0);
  return {
    polled(s, orders) {
      polls.inc();
      seconds.inc(s);
      sent.inc(orders);
    },
    failed: () => failures.inc(),
    dropped: (reason) => dropped.inc({ reason }),
    refused: (reason) => refused.inc({ reason }),
  };
}
