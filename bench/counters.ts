/**
 * The shop's own counts, scraped from GET /metrics of every process: database statements,
 * HTTP requests answered (the bench's scrapes of /metrics left out), and the work counters of
 * src/work-counters.ts (`shop_work_total{kind}`, `shop_kafka_requests_total{api}`). A checkout
 * without the work counters (a baseline) reports only the first two; its other kinds are absent.
 */
import type { RunningShop } from "./launch";

/** Counts by kind: `statements`, `http_requests`, the work kinds, `kafka_<Api>`, summed over the processes. */
export type Counts = Record<string, number>;

/** Parses one Prometheus text sample line: name, labels, value. */
function samples(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  const out: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k as string] = v as string;
    out.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return out;
}

/**
 * Scrapes every module's /metrics: per-process families (statements, work counters) once per
 * process (its first module), HTTP requests from each module's own registry.
 */
export async function scrapeCounts(shop: RunningShop): Promise<Counts> {
  const counts: Counts = {};
  const add = (k: string, v: number) => (counts[k] = (counts[k] ?? 0) + v);
  const firstOfProcess = new Set(Object.values(shop.processUrls));
  const texts = await Promise.all(
    Object.values(shop.urls).map(async (url) => ({ url, text: await (await fetch(`${url}/metrics`)).text() })),
  );
  for (const { url, text } of texts) {
    for (const s of samples(text)) {
      if (s.name === "shop_http_requests_total" && s.labels.route !== "/metrics") add("http_requests", s.value);
      if (!firstOfProcess.has(url)) continue;
      if (s.name === "shop_db_statements_total") add("statements", s.value);
      else if (s.name === "shop_work_total" && s.labels.kind) add(s.labels.kind, s.value);
      else if (s.name === "shop_kafka_requests_total" && s.labels.api) add(`kafka_${s.labels.api}`, s.value);
    }
  }
  return counts;
}

/** `after - before` per kind (kinds `after` has). */
export function countsSince(before: Counts, after: Counts): Counts {
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]));
}

/** Whether the checkout has the work counters (`shop_work_total`). */
export const hasWorkCounters = (c: Counts): boolean => "consumer_batches" in c;
