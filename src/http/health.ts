/**
 * GET /health?timeout=<seconds>: every check within the timeout, 200 or 503, with the consumer
 * groups' state. /health/ready is the same; /health/live only says the process answers.
 * While the service is not ready, state-changing requests get 503 `not_ready` (readinessGate).
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import type { ConsumerState } from "../bus/bus";
import { errorBody } from "./errors";
import { createRouter } from "./router";

/** A probe that throws when its dependency is unhealthy. */
export type HealthCheck = () => Promise<void>;

/** What /health reports besides its checks. */
export interface HealthOptions {
  /** The consumer groups of this process, shown under `consumers`. */
  consumers?: () => ConsumerState[];
}

const CheckResult = z.object({
  status: z.enum(["ok", "fail"]),
  latency_ms: z.number(),
  error: z.string().optional(),
});
const ConsumerSchema = z
  .object({
    topics: z.array(z.string()),
    state: z.enum(["idle", "joining", "joined", "rebalancing", "restarting", "failed", "stopped"]),
    joined: z.boolean(),
    partitions: z.record(z.string(), z.array(z.number().int())).openapi({ example: { new_orders: [0, 1, 2] } }),
    last_poll_at: z.string().nullable(),
    last_error: z.string().nullable(),
    last_error_at: z.string().nullable(),
  })
  .openapi("ConsumerGroupState");
const HealthSchema = z
  .object({
    status: z.enum(["ok", "fail"]),
    checks: z.record(z.string(), CheckResult),
    consumers: z.record(z.string(), ConsumerSchema).openapi({ description: "per consumer group of this process" }),
  })
  .openapi("Health");
const LiveSchema = z.object({ status: z.literal("ok") }).openapi("Live");

const query = z.object({
  timeout: z.coerce.number().min(0.05).max(60).default(2).openapi({ example: 2, description: "seconds" }),
});
const responses = {
  200: { description: "Ready: every check passed", content: { "application/json": { schema: HealthSchema } } },
  503: {
    description: "Not ready (starting, a consumer group not joined) or a check failed or timed out",
    content: { "application/json": { schema: HealthSchema } },
  },
};
const healthRoute = createRoute({
  method: "get",
  path: "/health",
  tags: ["health"],
  summary: "Checks the database and the bus within a timeout, and whether every consumer group has joined",
  request: { query },
  responses,
});
const readyRoute = createRoute({
  method: "get",
  path: "/health/ready",
  tags: ["health"],
  summary: "Readiness: the same as /health",
  request: { query },
  responses,
});
const liveRoute = createRoute({
  method: "get",
  path: "/health/live",
  tags: ["health"],
  summary: "Liveness: the process answers (checks nothing else)",
  responses: { 200: { description: "The process answers", content: { "application/json": { schema: LiveSchema } } } },
});

/** Routes for /health, /health/ready and /health/live over the given named checks. */
export function healthRoutes(checks: Record<string, HealthCheck>, opts: HealthOptions = {}) {
  const router = createRouter();
  const health = async (timeout: number) => {
    const entries = await Promise.all(
      Object.entries(checks).map(async ([name, check]) => [name, await runCheck(check, timeout * 1000)] as const),
    );
    const results = Object.fromEntries(entries);
    const ok = entries.every(([, r]) => r.status === "ok");
    const consumers = Object.fromEntries((opts.consumers?.() ?? []).map(({ group, ...state }) => [group, state]));
    return { body: { status: ok ? ("ok" as const) : ("fail" as const), checks: results, consumers }, ok };
  };
  router.openapi(healthRoute, async (c) => {
    const { body, ok } = await health(c.req.valid("query").timeout);
    return ok ? c.json(body, 200) : c.json(body, 503);
  });
  router.openapi(readyRoute, async (c) => {
    const { body, ok } = await health(c.req.valid("query").timeout);
    return ok ? c.json(body, 200) : c.json(body, 503);
  });
  router.openapi(liveRoute, (c) => c.json({ status: "ok" as const }, 200));
  return router;
}

/** Seconds a client is told to wait before retrying a request refused as not ready. */
export const NOT_READY_RETRY_AFTER_S = 2;

const WRITES = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/**
 * Refuses state-changing requests (POST, PUT, PATCH, DELETE) with 503 `not_ready` and
 * Retry-After while `notReady()` gives a reason; reads go through.
 */
export function readinessGate(notReady: () => string | null): MiddlewareHandler {
  return async (c, next) => {
    if (!WRITES.has(c.req.method)) return next();
    const reason = notReady();
    if (reason === null) return next();
    c.header("retry-after", String(NOT_READY_RETRY_AFTER_S));
    return c.json(errorBody("not_ready", `the service is not ready (${reason}); retry shortly`), 503);
  };
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
