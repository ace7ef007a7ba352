/** GET /health?timeout=<seconds>: every check within the timeout, 200 or 503. */
import { createRoute, z } from "@hono/zod-openapi";
import { createRouter } from "./router";

/** A probe that throws when its dependency is unhealthy. */
export type HealthCheck = () => Promise<void>;

const CheckResult = z.object({
  status: z.enum(["ok", "fail"]),
  latency_ms: z.number(),
  error: z.string().optional(),
});
const HealthSchema = z
  .object({ status: z.enum(["ok", "fail"]), checks: z.record(z.string(), CheckResult) })
  .openapi("Health");

const route = createRoute({
  method: "get",
  path: "/health",
  tags: ["health"],
  summary: "Checks the database and the bus within a timeout",
  request: {
    query: z.object({
      timeout: z.coerce.number().min(0.05).max(60).default(2).openapi({ example: 2, description: "seconds" }),
    }),
  },
  responses: {
    200: { description: "Every check passed", content: { "application/json": { schema: HealthSchema } } },
    503: { description: "A check failed or timed out", content: { "application/json": { schema: HealthSchema } } },
  },
});

/** Routes for /health over the given named checks. */
export function healthRoutes(checks: Record<string, HealthCheck>) {
  return createRouter().openapi(route, async (c) => {
    const { timeout } = c.req.valid("query");
    const entries = await Promise.all(
      Object.entries(checks).map(async ([name, check]) => [name, await runCheck(check, timeout * 1000)] as const),
    );
    const results = Object.fromEntries(entries);
    const ok = entries.every(([, r]) => r.status === "ok");
    return c.json({ status: ok ? ("ok" as const) : ("fail" as const), checks: results }, ok ? 200 : 503);
  });
}

async function runCheck(check: HealthCheck, timeoutMs: number): Promise<z.infer<typeof CheckResult>> {
  const started = performance.now();
  let timer: Timer | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([check(), deadline]);
    return { status: "ok", latency_ms: Math.round(performance.now() - started) };
  } catch (err) {
    return { status: "fail", latency_ms: Math.round(performance.now() - started), error: (err as Error).message };
  } finally {
    clearTimeout(timer);
  }
}
