/** The live order page: `GET /` (the page), `GET /live/events` (its stream), `GET /live/overview` (balances and stock). */
import { createHash } from "node:crypto";
import type { Server } from "bun";
import type { z } from "zod";
import type { Database } from "../../../src/db/database";
import { errorBody } from "../../../src/http/errors";
import { createRouter, type Router } from "../../../src/http/router";
import type { Logger } from "../../../src/log";
import type { MetricsRegistry } from "../../../src/metrics/registry";
import type { RegistryConfigSchema } from "../config";
// Embedded as text, so that a `bun build --compile` binary carries it (typed by bun-types as an HTML bundle).
import pageText from "../page/index.html" with { type: "text" };
import { liveMetrics } from "./metrics";
import { createOrderFeed, type OrderFeedOptions, type StreamServer } from "./order-feed";
import { createOverview } from "./overview";
import { LiveSnapshot, liveEventsRoute, liveOverviewRoute, livePageRoute, TOO_MANY_FROM_ADDRESS_MESSAGE } from "./routes";

const page = pageText as unknown as string;

/**
 * The page's Content-Security-Policy: nothing but its own inline script and style (by hash, so an
 * injected one cannot run), requests to this origin only, no framing, no plugins, no base tag.
 * Links elsewhere (an order's trace, `trace_url`) are navigations, which it does not restrict.
 */
const PAGE_CSP = pagePolicy(page);

function pagePolicy(html: string): string {
  const hashes = (tag: string) =>
    [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, "g"))]
      .map(
        (m) =>
          `'sha256-${createHash("sha256")
            .update(m[1] ?? "")
            .digest("base64")}'`,
      )
      .join(" ");
  return [
    "default-src 'none'",
    `script-src ${hashes("script")}`,
    `style-src ${hashes("style")}`,
    "connect-src 'self'",
    "img-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; ");
}

/** What the module mounts. */
export interface LivePage {
  router: Router;
  /** Ends every event stream; the module calls it when it stops (the page reconnects to another process). */
  stop(): Promise<void>;
}

/** registry.yaml's settings of the live stream and page (modules/registry/config.ts). */
export type LiveConfig = Pick<
  z.infer<typeof RegistryConfigSchema>,
  "live_max_clients" | "live_max_clients_per_address" | "live_max_unsent_bytes" | "live_stall_timeout_ms" | "trace_url"
>;

/** The feed's limits, and the trace viewer it tells the page, as registry.yaml sets them. */
const feedSettings = (config: LiveConfig): Partial<OrderFeedOptions> => ({
  maxClients: config.live_max_clients,
  maxClientsPerAddress: config.live_max_clients_per_address,
  maxUnsentBytes: config.live_max_unsent_bytes,
  stallTimeoutMs: config.live_stall_timeout_ms,
  traceUrl: config.trace_url ?? null,
});

/** The page's routes over registry's database; `peers` gives wallet's and storage's base URLs. */
export function createLivePage(deps: {
  db: Database;
  log: Logger;
  metrics: MetricsRegistry;
  peers: () => { wallet: string; storage: string };
  config?: LiveConfig;
  feed?: Partial<OrderFeedOptions>;
}): LivePage {
  const { db, log, peers } = deps;
  let clients = () => 0;
  const options = { ...(deps.config ? feedSettings(deps.config) : {}), ...deps.feed };
  const feed = createOrderFeed(
    db,
    log,
    options,
    liveMetrics(deps.metrics, () => clients()),
  );
  clients = feed.clients;
  const overview = createOverview(peers);
  const router = createRouter()
    .openapi(livePageRoute, (c) => c.html(page, 200, { "cache-control": "no-cache", "content-security-policy": PAGE_CSP }) as never)
    .openapi(liveEventsRoute, (c) => {
      const peer = clientPeer(c.env, c.req.raw);
      const admitted = feed.connect({ signal: c.req.raw.signal, server: streamServer(c.env), address: peer?.address, port: peer?.port });
      if ("refused" in admitted) {
        if (admitted.refused === "too_many_clients_from_address") {
          return c.json(errorBody(admitted.refused, TOO_MANY_FROM_ADDRESS_MESSAGE), 429, { "retry-after": "5" });
        }
        return c.json(errorBody("too_many_clients", "too many live clients; retry shortly"), 503, { "retry-after": "5" });
      }
      return c.body(admitted.stream, 200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
      }) as never;
    })
    .openapi(liveOverviewRoute, async (c) => c.json(await overview(), 200));
  router.openAPIRegistry.register("LiveSnapshot", LiveSnapshot);
  return { router, stop: () => feed.stop() };
}

/** The TCP peer's IP address and port, from Bun's server (the env); X-Forwarded-For is not trusted (no trusted-proxy setting). */
function clientPeer(env: unknown, req: Request): { address: string; port: number } | undefined {
  if (typeof env !== "object" || env === null || !("requestIP" in env) || typeof env.requestIP !== "function") return undefined;
  const peer = (env as Pick<Server<undefined>, "requestIP">).requestIP(req);
  return peer ? { address: peer.address, port: peer.port } : undefined;
}

/** Bun passes its server to `fetch` as the env; the feed uses it to notice the server stopping. */
function streamServer(env: unknown): StreamServer | undefined {
  if (typeof env !== "object" || env === null || !("port" in env)) return undefined;
  const server = env as { port: unknown };
  return typeof server.port === "number" ? (env as StreamServer) : undefined;
}
