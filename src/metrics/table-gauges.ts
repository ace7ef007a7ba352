/** Gauges read from a module's tables at scrape time: one query per scrape for all of a read's families. */
import { Gauge } from "prom-client";
import type { MetricsRegistry } from "./registry";

/**
 * Runs `read` once for every gauge that asks during one scrape (prom-client collects the
 * families of a registry concurrently), so the gauges of one query cost one query.
 */
function oncePerScrape<T>(read: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | null = null;
  return () =>
    (pending ??= read().finally(() => {
      pending = null;
    }));
}

/** One family of gauges set at scrape time from a shared read (see tableGauges). */
export interface TableGauge<T, L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
  /** The samples of this family from what `read` returned. */
  values: (snapshot: T) => { labels?: Partial<Record<L, string>>; value: number }[];
}

/**
 * Registers gauges computed at scrape time from one `read` (a query of the module's tables).
 * If the read fails, those families show no samples for that scrape; the rest of /metrics is served.
 */
export function tableGauges<T>(registry: MetricsRegistry, read: () => Promise<T>, families: TableGauge<T, string>[]): void {
  const snapshot = oncePerScrape(read);
  for (const family of families) {
    new Gauge({
      name: family.name,
      help: family.help,
      labelNames: family.labelNames ?? [],
      registers: [registry],
      async collect() {
        this.reset();
        const data = await snapshot().catch(() => null);
        if (data === null) return;
        for (const { labels, value } of family.values(data)) {
          if (labels) this.set(labels, value);
          else this.set(value);
        }
      },
    });
  }
}
