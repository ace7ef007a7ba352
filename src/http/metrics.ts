/** GET /metrics in the Prometheus text format. */
import { createRoute, z } from "@hono/zod-openapi";
import { createRouter } from "./router";

/** One sample. */
export interface Sample {
  name: string;
  labels?: Record<string, string>;
  value: number;
}

/** Produces samples when /metrics is scraped. */
export type MetricsSource = () => Promise<Sample[]>;

const route = createRoute({
  method: "get",
  path: "/metrics",
  tags: ["health"],
  summary: "Prometheus metrics",
  responses: { 200: { description: "Metrics", content: { "text/plain": { schema: z.string() } } } },
});

/** Routes for /metrics over the given sources. */
export function metricsRoutes(sources: MetricsSource[]) {
  return createRouter().openapi(route, async (c) => {
    const samples = (await Promise.all(sources.map((s) => s()))).flat();
    const body = samples.map(formatSample).join("\n");
    return c.text(`${body}\n`, 200, { "content-type": "text/plain; version=0.0.4" });
  });
}

function formatSample({ name, labels, value }: Sample): string {
  const pairs = Object.entries(labels ?? {}).map(([k, v]) => `${k}="${v.replaceAll(/["\\\n]/g, "_")}"`);
  return `shop_${name}${pairs.length ? `{${pairs.join(",")}}` : ""} ${value}`;
}
