/**
 * Each module's port, bound before the database opens: a port in use is found at once, before a
 * data directory is created or a migration runs. Until the module's app is mounted, the port
 * answers 503 "starting" with Retry-After (and /health/live 200: the process answers).
 */
import type { Server } from "bun";
import { Hono } from "hono";
import type { ModuleName } from "./config";
import { errorBody } from "./http/errors";
import { hardeningHeaders } from "./http/guards";

/** What a mounted app serves with: Bun's fetch arguments, passed on as they are. */
type Handler = (request: Request, server: Server<undefined>) => Response | Promise<Response>;

/** One module's bound port. */
export interface Listener {
  module: ModuleName;
  server: Server<undefined>;
  /** From now on, `fetch` answers every request. */
  mount(fetch: Handler): void;
}

/** A module's port and where it was set (`WALLET_PORT`, `--wallet-port`, `config/wallet.yaml: port`). */
export interface PortSetting {
  module: ModuleName;
  port: number;
  origin: string;
}

/** Seconds a client is told to wait while the service starts. */
const STARTING_RETRY_AFTER_S = 2;

/** Bun's request body cap: 100x past the largest BODY_LIMIT_BYTES, a backstop only (the app's bodyLimit answers first). */
const BUN_BODY_BACKSTOP_BYTES = 1024 * 1024 * 1024;

/** What a port answers before its app is mounted. */
function startingApp(reason: () => string): Hono {
  const app = new Hono();
  app.use(hardeningHeaders);
  app.get("/health/live", (c) => c.json({ status: "ok" as const }, 200));
  app.all("*", (c) => {
    c.header("retry-after", String(STARTING_RETRY_AFTER_S));
    if (c.req.path === "/health" || c.req.path === "/health/ready") {
      // The shape of /health's report, so that a probe that reads it sees why.
      return c.json(
        { status: "fail" as const, checks: { start: { status: "fail" as const, latency_ms: 0, error: reason() } }, consumers: {} },
        503,
      );
    }
    return c.json(errorBody("not_ready", `the service is not ready (${reason()}); retry shortly`), 503);
  });
  return app;
}

/**
 * Binds every port (all or none: on a failure the ones bound are released) and answers
 * "starting" on them. A port in use is an error naming the module, the address and the setting.
 */
export function bindListeners(ports: PortSetting[], host: string, reason: () => string): Listener[] {
  const starting = startingApp(reason);
  const listeners: Listener[] = [];
  try {
    for (const setting of ports) listeners.push(bind(setting, host, starting));
  } catch (err) {
    for (const l of listeners) void l.server.stop(true);
    throw err;
  }
  return listeners;
}

function bind({ module, port, origin }: PortSetting, host: string, starting: Hono): Listener {
  let handler: Handler = (request, server) => starting.fetch(request, server);
  let server: Server<undefined>;
  try {
    server = Bun.serve({
      port,
      hostname: host,
      fetch: (request, srv) => handler(request, srv),
      // Bun streams the body to fetch() (backpressure, nothing buffered ahead), so the shell's
      // bodyLimit answers an oversized body with a JSON 413 after reading at most BODY_LIMIT_BYTES
      // (at once when Content-Length says so). Bun's own cap is only a backstop: a declared
      // Content-Length past it gets Bun's bare 413 before the app sees the request.
      maxRequestBodySize: BUN_BODY_BACKSTOP_BYTES,
    });
  } catch (err) {
    // Bun only asks "Is port N in use?": say which module, which setting, and what to do.
    if ((err as { code?: unknown }).code !== "EADDRINUSE") throw err;
    throw new Error(
      `${module} cannot listen on ${host}:${port}: the port is in use (${origin} ${port}; another shop still running?); ` +
        `stop that process, or choose another port: ${module.toUpperCase()}_PORT=<port> or --${module}-port <port> (0: any free port)`,
      { cause: err },
    );
  }
  return {
    module,
    server,
    mount(fetch) {
      handler = fetch;
    },
  };
}
