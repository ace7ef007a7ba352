/** Registry's metric families: orders by state from the table, and how long sagas take. */
import { Histogram } from "prom-client";
import type { Database } from "../../src/db/database";
import type { MetricsRegistry } from "../../src/metrics/registry";
import { tableGauges } from "../../src/metrics/table-gauges";
import { orderCounts } from "./operator";
import type { SagaEnded } from "./saga";

/** Saga durations, created to final: from a fast in-process run (ms) to the deadline and past it. */
const SAGA_BUCKETS_S = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/**
 * Registers `shop_orders{status,reason,compensation}` and `shop_unknown_orders` (read from the
 * tables at scrape time: they survive restarts) and `shop_saga_duration_seconds{status}`; returns
 * the observer that registry's finalisation calls.
 */
export function registryMetrics(registry: MetricsRegistry, db: Database): SagaEnded {
  type Counts = Awaited<ReturnType<typeof orderCounts>>;
  tableGauges<Counts>(registry, () => orderCounts(db), [
    {
      name: "shop_orders",
      help: "Orders by status, reason (rejected) and compensation (rejected: done or pending), from the table",
      labelNames: ["status", "reason", "compensation"],
      values: (c) =>
        c.orders.map((r) => ({ labels: { status: r.status, reason: r.reason ?? "", compensation: r.compensation ?? "" }, value: r.n })),
    },
    {
      name: "shop_unknown_orders",
      help: "Orders a participant acted on that registry never made",
      values: (c) => [{ value: c.unknownOrders }],
    },
  ]);
  const duration = new Histogram({
    name: "shop_saga_duration_seconds",
    help: "Time from an order's creation to its final state (completed or rejected), observed by registry when it decides",
    labelNames: ["status"],
    buckets: SAGA_BUCKETS_S,
    registers: [registry],
  });
  for (const status of ["completed", "rejected"] as const) duration.zero({ status });
  return (status, seconds) => duration.observe({ status }, Math.max(0, seconds));
}
