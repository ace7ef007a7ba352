/**
 * GET /health?timeout=<seconds>: every check within the timeout, 200 or 503, with the consumer
 * groups' state. /health/ready is the same plus the readiness-only checks (the outbox backlog
 * under its bound); /health/live only says the process answers.
 * While the service is not ready, state-changing requests get 503 `not_ready` (readinessGate).
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import type { ConsumerState } from "../bus/bus";
import { errorBody } from "./errors";
import { createRouter } from "./router";
import { withErrors } from "./schemas";

/** A probe that throws when its dependency is unhealthy. */
export type HealthCheck = () => Promise<void>;

/** What /health reports besides its checks. */
export interface HealthOptions {
  /** The consumer groups of this process, shown under `consumers`. */
  consumers?: () => ConsumerState[];
  /** Checks /health/ready runs besides the common ones: reasons to take no traffic that are no fault of a dependency. */
  readyChecks?: Record<string, HealthCheck>;
}

const CheckResult = z.object({
  status: z.enum(["ok", "fail"]).describe("`ok`, or `fail` when the check threw or outlasted the timeout"),
  latency_ms: z.number().describe("How long the check took, in milliseconds"),
  error: z.string().optional().describe("Why it failed (absent when ok)"),
});
const ConsumerSchema = z
  .object({
    topics: z.array(z.string()).describe("The topics the group reads"),
    state: z.enum(["idle", "joining", "joined", "rebalancing", "restarting", "failed", "stopped"]).describe("Where the group stands"),
    joined: z.boolean().describe("Whether it has joined and holds its partitions"),
    partitions: z
      .record(z.string(), z.array(z.number().int()))
      .openapi({ example: { new_orders: [0, 1, 2] }, description: "The partitions it holds, by topic" }),
    last_poll_at: z.string().nullable().describe("When it last fetched records; null before the first fetch"),
    last_error: z.string().nullable().describe("Its last error; null if none"),
    last_error_at: z.string().nullable().describe("When that error happened; null if none"),
  })
  .describe("A consumer group of this process")
  .openapi("ConsumerGroupState");
const HealthSchema = z
  .object({
    status: z.enum(["ok", "fail"]).describe("`ok` when every check passed"),
    checks: z.record(z.string(), CheckResult).describe("Each check by name (database, bus, ...)"),
    consumers: z.record(z.string(), ConsumerSchema).openapi({ description: "per consumer group of this process" }),
  })
  .openapi("Health");
const LiveSchema = z.object({ status: z.literal("ok").describe("Always `ok`: the process answers") }).openapi("Live");

const CONSUMER_EXAMPLE = {
  topics: ["new_orders", "rejected_orders"],
  state: "joined" as const,
  joined: true,
  partitions: { new_orders: [0, 1, 2], rejected_orders: [0, 1, 2] },
  last_poll_at: "2026-03-14T09:26:53.702Z",
  last_error: null,
  last_error_at: null,
};
const HEALTHY = {
  status: "ok" as const,
  checks: { database: { status: "ok" as const, latency_ms: 1 }, bus: { status: "ok" as const, latency_ms: 0 } },
  consumers: { wallet: CONSUMER_EXAMPLE },
};
const STARTING = {
  status: "fail" as const,
  checks: {
    database: { status: "ok" as const, latency_ms: 1 },
    bus: { status: "fail" as const, latency_ms: 0, error: "starting: consumer groups joining" },
  },
  consumers: { wallet: { ...CONSUMER_EXAMPLE, state: "joining" as const, joined: false, partitions: {}, last_poll_at: null } },
};

const query = z.object({
  timeout: z.coerce.number().min(0.05).max(60).default(2).openapi({ example: 2, description: "seconds" }),
});
const responses = {
  200: { description: "Ready: every check passed", content: { "application/json": { schema: HealthSchema, example: HEALTHY } } },
  503: {
    description: "Not ready (starting, a consumer group not joined) or a check failed or timed out",
    content: { "application/json": { schema: HealthSchema, example: STARTING } },
  },
};
const HEALTH_ERRORS = {
  400: {
    invalid_request: {
      when: "`timeout` is not a number from 0.05 to 60",
      message: "timeout: Too big: expected number to be <=60",
      field: "timeout",
    },
  },
};
const healthRoute = createRoute(
  withErrors(
    {
      method: "get",
      path: "/health",
      tags: ["health"],
      summary: "Checks the database and the bus within a timeout, and whether every consumer group has joined",
      description: "200 when every check passed within `timeout` seconds, else 503 with the same report.",
      request: { query },
      responses,
    },
    HEALTH_ERRORS,
    { database: false },
  ),
);
const readyRoute = createRoute(
  withErrors(
    {
      method: "get",
      path: "/health/ready",
      tags: ["health"],
      summary: "Readiness: the checks of /health, and the outbox backlog under ready_max_outbox_backlog",
      description: "For load balancers and compose healthchecks: 503 until the consumer groups joined, or while a check fails.",
      request: { query },
      responses,
    },
    HEALTH_ERRORS,
    { database: false },
  ),
);
const liveRoute = createRoute(
  withErrors(
    {
      method: "get",
      path: "/health/live",
      tags: ["health"],
      summary: "Liveness: the process answers (checks nothing else)",
      description: "Always 200 while the process serves HTTP; restart it when this fails.",
      responses: {
        200: {
          description: "The process answers",
          content: { "application/json": { schema: LiveSchema, example: { status: "ok" as const } } },
        },
      },
    },
    {},
    { database: false },
  ),
);

/** Routes for /health, /health/ready and /health/live over the given named checks. */
export function healthRoutes(checks: Record<string, HealthCheck>, opts: HealthOptions = {}) {
  const router = createRouter();
  const readiness = { ...checks, ...opts.readyChecks };
  const health = async (timeout: number, run: Record<string, HealthCheck> = checks) => {
    const entries = await Promise.all(
      Object.entries(run).map(async ([name, check]) => [name, await runCheck(check, timeout * 1000)] as const),
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
    const { body, ok } = await health(c.req.valid("query").timeout, readiness);
    return ok ? c.json(body, 200) : c.json(body, 503);
  });
  router.openapi(liveRoute, (c) => c.json({ status: "ok" as const }, 200));
  return router;
}

/** Seconds a client is told to wait before retrying a request refused as not ready. */
const NOT_READY_RETRY_AFTER_S = 2;

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
