/** `shop_work_total{kind}` and `shop_kafka_requests_total{api}`: the process's work counters (src/work-counters.ts), read at scrape time. */
import { Counter } from "prom-client";
import { kafkaRequests, work } from "../work-counters";
import type { MetricsRegistry } from "./registry";

/** Registers the work counters in `registry` (every service app of a process shows the same process-wide counts). */
export function workMetrics(registry: MetricsRegistry): void {
  new Counter({
    name: "shop_work_total",
    help: "Units of work this process did, by kind: consumer batches and records, relay claims (empty ones too) and marks, admission and catalogue reads, periodic timer wake-ups and their statements",
    labelNames: ["kind"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [kind, n] of Object.entries(work)) this.inc({ kind }, n);
    },
  });
  new Counter({
    name: "shop_kafka_requests_total",
    help: "Kafka requests this process sent, by API (Fetch, Produce, OffsetCommit, Heartbeat, ...)",
    labelNames: ["api"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [api, n] of Object.entries(kafkaRequests)) this.inc({ api }, n);
    },
  });
}
