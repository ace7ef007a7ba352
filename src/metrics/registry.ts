/**
 * Metrics, on prom-client. Each service app has its own registry (in one process the three
 * services are three apps on three ports, so each scrape target reports its own service); the
 * process's own metrics live in one registry per process (src/metrics/process.ts).
 */
import { Registry } from "prom-client";

export { Registry };

/** A service's registry: every family of one service app, rendered by its /metrics. */
export type MetricsRegistry = Registry;
