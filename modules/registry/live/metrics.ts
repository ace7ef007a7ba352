/** The live feed's metric families: connected clients, and what its poller costs. */
import { Counter, Gauge } from "prom-client";
import type { MetricsRegistry } from "../../../src/http/metrics";
import type { FeedObserver } from "./order-feed";

/**
 * Registers `shop_live_clients` (read at scrape time from `clients`), `shop_live_polls_total`,
 * `shop_live_poll_seconds_total`, `shop_live_orders_sent_total` and `shop_live_poll_failures_total`;
 * returns the observer the feed reports its polls to.
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
  const polls = new Counter({ name: "shop_live_polls_total", help: "Polls of the live feed for changed orders (only while a client is connected)", registers: [registry] });
  const seconds = new Counter({ name: "shop_live_poll_seconds_total", help: "Time spent in those polls, reads included", registers: [registry] });
  const sent = new Counter({ name: "shop_live_orders_sent_total", help: "Changed orders sent to the live clients (each once per poll, whatever the number of clients)", registers: [registry] });
  const failures = new Counter({ name: "shop_live_poll_failures_total", help: "Polls that failed (the database did not answer); the next poll retries", registers: [registry] });
  return {
    polled(s, orders) {
      polls.inc();
      seconds.inc(s);
      sent.inc(orders);
    },
    failed: () => failures.inc(),
  };
}
