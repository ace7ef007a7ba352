/** Starts the chosen modules in this process: database, bus, HTTP servers; stops them cleanly. */
import type { Server } from "bun";
import type { Bus } from "./bus/bus";
import { createBus } from "./bus/index";
import { type Env, loadModuleConfig, type ModuleName, type Settings } from "./config";
import { type Database, type DatabaseTarget, openDatabase } from "./db/database";
import { createServiceApp } from "./http/app";
import { adminToken } from "./http/auth";
import type { Logger } from "./log";
import type { RunningModule, ShopModule } from "./module";
import { MODULES } from "./modules";

/** A started shop. */
export interface Shop {
  /** Base URL of each running module's HTTP service. */
  urls: Partial<Record<ModuleName, string>>;
  bus: Bus;
  db: Database;
  /** Stops accepting requests, finishes work in flight, closes the bus and the database. */
  stop(): Promise<void>;
}

/** Where the settings say the data lives. */
export function databaseTarget(settings: Settings): DatabaseTarget {
  return settings.DATABASE_URL
    ? { driver: "postgres", url: settings.DATABASE_URL, poolSize: settings.DATABASE_POOL_SIZE }
    : { driver: "pglite", dataDir: settings.DATA_DIR === ":memory:" ? null : settings.DATA_DIR };
}

/**
 * Starts `settings.MODULES`; module YAML comes from `settings.CONFIG_DIR` with `env` overrides.
 * Aborting `abort` during the start (a signal while waiting for Kafka) stops it and rejects.
 */
export async function startShop(settings: Settings, env: Env, log: Logger, abort?: AbortSignal): Promise<Shop> {
  const chosen = settings.MODULES.map((name) => MODULES[name]);
  const configs = chosen.map((m) => loadModuleConfig(m.name, m.configSchema, settings.CONFIG_DIR, env));
  const db = await openDatabase(databaseTarget(settings), log.child("db"));
  const servers: Server<undefined>[] = [];
  const running: RunningModule[] = [];
  let bus: Bus | null = null;
  try {
    for (const m of chosen) await db.migrate(m.name, m.migrationsFolder);
    bus = await createBus(settings, log.child("bus"));
    const created = bus;
    abort?.addEventListener("abort", () => void created.stop(), { once: true });
    for (const [i, m] of chosen.entries()) {
      running.push(await m.init({ config: configs[i], db, bus, log: log.child(m.name) }));
    }
    await bus.start();
    if (abort?.aborted) throw new Error("stopped during start");
    for (const r of running) await r.start();
    const urls: Shop["urls"] = {};
    for (const [i, m] of chosen.entries()) {
      const port = (configs[i] as { port: number }).port;
      const server = serveModule(m, running[i] as RunningModule, port, { settings, db, bus, log });
      servers.push(server);
      urls[m.name] = `http://127.0.0.1:${server.port}`;
      log.info("listening", { module: m.name, url: urls[m.name] });
    }
    const started = bus;
    let stopping: Promise<void> | null = null;
    return {
      urls,
      bus: started,
      db,
      stop: () => (stopping ??= shutdown(servers, running, started, db, log)),
    };
  } catch (err) {
    await shutdown(servers, running, bus, db, log).catch(() => {});
    throw err;
  }
}

/** Bun's request body cap: 100x past the largest BODY_LIMIT_BYTES, a backstop only (see serveModule). */
const BUN_BODY_BACKSTOP_BYTES = 1024 * 1024 * 1024;

/** One module's HTTP service: its routes inside the shared shell, on its own port. */
function serveModule(
  m: ShopModule,
  module: RunningModule,
  port: number,
  ctx: { settings: Settings; db: Database; bus: Bus; log: Logger },
): Server<undefined> {
  const { settings, db, bus, log } = ctx;
  const app = createServiceApp({
    title: m.title,
    routers: [module.router],
    checks: { database: () => db.ping(), bus: () => bus.check() },
    metrics: [module.metrics, async () => [
      { name: "db_statements_total", value: db.stats.statements },
      { name: "db_transactions_total", value: db.stats.transactions },
    ]],
    bodyLimitBytes: settings.BODY_LIMIT_BYTES,
    adminToken: adminToken(settings, log),
    log: log.child(`${m.name}.http`),
  });
  return Bun.serve({
    port,
    hostname: settings.HOST,
    fetch: app.fetch,
    // Bun streams the body to fetch() (backpressure, nothing buffered ahead), so the shell's
    // bodyLimit answers an oversized body with a JSON 413 after reading at most BODY_LIMIT_BYTES
    // (at once when Content-Length says so). Bun's own cap is only a backstop: a declared
    // Content-Length past it gets Bun's bare 413 before the app sees the request.
    maxRequestBodySize: BUN_BODY_BACKSTOP_BYTES,
  });
}

async function shutdown(servers: Server<undefined>[], running: RunningModule[], bus: Bus | null, db: Database, log: Logger) {
  log.info("stopping");
  await Promise.all(servers.map((s) => s.stop()));
  await Promise.all(running.map((r) => r.stop()));
  await bus?.stop();
  await db.close();
  log.info("stopped");
}
