/** Starts the chosen modules in this process: database, bus, HTTP servers; stops them cleanly. */
import type { Server } from "bun";
import { migrationsFolder } from "../assets";
import { type Bus, notJoinedReason } from "../bus/bus";
import { createBus } from "../bus/index";
import { recordSigning } from "../bus/signing";
import { checkPorts, type Env, loadModuleConfig, type ModuleName, pinnedWriters, portOrigin, type Settings } from "../config";
import type { Topics } from "../contracts/topics";
import { type Database, type DatabaseTarget, openDatabase } from "../db/database";
import { newDataDir } from "../db/new-data-dir";
import { createServiceApp } from "../http/app";
import { adminToken } from "../http/auth";
import { bindListeners, type Listener } from "../listeners";
import type { Logger } from "../log";
import { databaseMetrics } from "../metrics/database";
import { type MetricsRegistry, Registry } from "../metrics/registry";
import { workMetrics } from "../metrics/work";
import type { RunningModule, ShopModule } from "../module";
import { tracingMetrics } from "../tracing/metrics";
import { startTracing, type Tracing } from "../tracing/setup";
import { MODULES } from "./modules";
import { reportOpening } from "./start-banner";

/** A started shop. */
export interface Shop {
  /** Base URL of each running module's HTTP service. */
  urls: Partial<Record<ModuleName, string>>;
  bus: Bus;
  db: Database;
  /**
   * Settles once the shop is ready: bus started, modules' background work started, every
   * consumer group joined. Rejects if that failed (see StartOptions.onFatal) or the shop stopped first.
   */
  ready: Promise<void>;
  /** Why the shop is not ready, or null when it is. */
  notReady(): string | null;
  /** Stops accepting requests, finishes work in flight, closes the bus and the database. */
  stop(): Promise<void>;
}

/** How the caller follows a start. */
export interface StartOptions {
  /** Aborting it before startShop() resolves (a signal during migrations) stops the start and rejects. */
  signal?: AbortSignal;
  /**
   * Called once if the shop fails after its HTTP services are up: the bus or a module's
   * background work could not start, or a consumer crashed for good. The shop is not ready from
   * then on; the caller should stop() it and exit non-zero so that a supervisor restarts it.
   */
  onFatal?: (err: Error) => void;
  /** A person watches stderr on a terminal: an updating progress line while the embedded database opens. */
  tty?: boolean;
}

/** Where the settings say the data lives. */
export function databaseTarget(settings: Settings): DatabaseTarget {
  return settings.DATABASE_URL
    ? { driver: "postgres", url: settings.DATABASE_URL, poolSize: settings.DATABASE_POOL_SIZE }
    : { driver: "pglite", dataDir: settings.DATA_DIR === ":memory:" ? null : settings.DATA_DIR, unsafeNoFsync: settings.PGLITE_UNSAFE_NO_FSYNC };
}

/** How far the start behind the open HTTP services has come. */
type Phase = "bus" | "modules" | "joining" | "ready";

/**
 * Starts `settings.MODULES`; module YAML comes from `settings.CONFIG_DIR` with `env` overrides.
 * Opens the database, migrates, initialises the modules and serves HTTP, then resolves; the bus
 * and the modules' background work start behind it (see Shop.ready). Until then `/health` is 503
 * with the reason and state-changing requests get 503 `not_ready`, so a restarted service answers
 * at once instead of staying dark while its consumer groups rejoin.
 */
export async function startShop(settings: Settings, env: Env, log: Logger, opts: StartOptions = {}): Promise<Shop> {
  const chosen = settings.MODULES.map((name) => MODULES[name]);
  const configs = chosen.map((m) => loadModuleConfig(m.name, m.configSchema, settings.CONFIG_DIR, env));
  const ports = chosen.map((m, i) => ({ module: m.name, port: (configs[i] as { port: number }).port, origin: portOrigin(m.name, settings.CONFIG_DIR, env) }));
  checkPorts(ports, settings.CONFIG_DIR, env);
  // Every port first: one in use is found before the database opens (nothing created, nothing
  // migrated). Until its app is mounted, each answers 503 with why (and Retry-After).
  let starting = "starting: opening the database";
  const listeners = bindListeners(ports, settings.HOST, () => starting);
  log.info("ports bound; 503 until started", { urls: Object.fromEntries(listeners.map((l) => [l.module, `http://127.0.0.1:${l.server.port}`])) });
  const target = databaseTarget(settings);
  // A data directory this start creates goes again if the start does not complete.
  const cleanup = target.driver === "pglite" && target.dataDir ? newDataDir(target.dataDir) : null;
  const tracing = startTracing(settings, settings.MODULES, log.child("tracing"));
  const opening = reportOpening(target, log.child("db"), opts.tty === true);
  let db: Database;
  try {
    db = await openDatabase(target, opening.log);
  } catch (err) {
    opening.done(false);
    await Promise.all(listeners.map((l) => l.server.stop(true)));
    await tracing?.stop();
    cleanup?.(err);
    throw err;
  }
  opening.done(true);
  const servers = listeners.map((l) => l.server);
  const running: RunningModule[] = [];
  let bus: Bus | null = null;
  let phase: Phase = "bus";
  let stopping = false;
  let failure: Error | null = null;
  const notReady = (): string | null => {
    if (stopping) return "stopping";
    if (failure) return `failed: ${failure.message}`;
    switch (phase) {
      case "ready":
        return null;
      case "bus":
        return `starting: ${bus?.kind === "kafka" ? "connecting to Kafka" : "starting the bus"}`;
      case "modules":
        return "starting: background work";
      case "joining":
        return `starting: ${(bus && notJoinedReason(bus.consumers())) || "consumer groups joining"}`;
    }
  };
  const urls: Shop["urls"] = {};
  // One registry per service app: each port's /metrics reports its own service (and the shared database handle).
  const registries = chosen.map(() => {
    const registry = new Registry();
    databaseMetrics(registry, db);
    workMetrics(registry);
    if (tracing) tracingMetrics(registry, tracing);
    return registry;
  });
  try {
    starting = "starting: applying migrations";
    for (const m of chosen) await db.migrate(m.name, migrationsFolder(m.name, m.migrationsFolder));
    starting = "starting: initialising the modules";
    bus = await createBus(settings, log.child("bus"));
    const signing = recordSigning(settings, log.child("bus"));
    const writePrevious = pinnedWriters(settings.BUS_WRITE_PREVIOUS_VERSIONS);
    if (writePrevious.size > 0) log.warn("writing previous message versions until every reader is upgraded", { types: [...writePrevious] });
    for (const [i, m] of chosen.entries()) {
      const ctx = { config: configs[i], db, bus, log: log.child(m.name), siblings: urls, signing, writePrevious, metrics: registries[i] as Registry };
      running.push(await m.init(ctx));
    }
    if (opts.signal?.aborted) throw new Error("stopped during start");
    const created = bus;
    for (const [i, m] of chosen.entries()) {
      const topics = (configs[i] as { topics: Topics }).topics;
      const listener = listeners[i] as Listener;
      listener.mount(serveModule(m, running[i] as RunningModule, { settings, db, bus: created, notReady, log, topics }, registries[i] as Registry));
      urls[m.name] = `http://127.0.0.1:${listener.server.port}`;
      log.info("listening", { module: m.name, url: urls[m.name] });
    }
  } catch (err) {
    await shutdown(servers, running, bus, db, tracing, log).catch(() => {});
    cleanup?.(err);
    throw err;
  }

  const started = bus;
  let halted!: () => void;
  const halt = new Promise<void>((resolve) => (halted = resolve));
  const fatal = (err: Error) => {
    if (stopping || failure) return;
    failure = err;
    log.error("failed after start; not ready", { err });
    opts.onFatal?.(err);
  };
  started.onFatal(fatal);
  const ready = (async () => {
    const stillStarting = () => {
      if (stopping) throw new Error("stopped during start");
    };
    await started.start();
    stillStarting();
    phase = "modules";
    for (const r of running) {
      await r.start();
      stillStarting();
    }
    phase = "joining";
    await Promise.race([started.joined(), halt]);
    stillStarting();
    phase = "ready";
    // The caller announces it (src/start-banner.ts): a banner on a terminal, a "ready" log line otherwise.
  })();
  ready.catch((err: Error) => fatal(err));

  let stopped: Promise<void> | null = null;
  return {
    urls,
    bus: started,
    db,
    ready,
    notReady,
    stop: () =>
      (stopped ??= (async () => {
        stopping = true;
        halted();
        await shutdown(servers, running, started, db, tracing, log, async () => {
          // A start still waiting for the broker is cut short; one starting modules finishes first.
          if (phase === "bus") await started.stop();
          await ready.catch(() => {});
        });
      })()),
  };
}

/** One module's HTTP service: its routes inside the shared shell (mounted on its port's listener). */
function serveModule(
  m: ShopModule,
  module: RunningModule,
  ctx: { settings: Settings; db: Database; bus: Bus; notReady: () => string | null; log: Logger; topics: Topics },
  metrics: MetricsRegistry,
): (request: Request, server: Server<undefined>) => Response | Promise<Response> {
  const { settings, db, bus, notReady, log } = ctx;
  const app = createServiceApp({
    title: m.title,
    routers: [module.router],
    checks: {
      database: () => db.ping(),
      bus: async () => {
        const reason = notReady();
        if (reason) throw new Error(reason);
        await bus.check();
      },
    },
    consumers: () => bus.consumers(),
    notReady,
    metrics,
    readyChecks: module.readyChecks,
    bodyLimitBytes: settings.BODY_LIMIT_BYTES,
    adminToken: adminToken(settings, log),
    log: log.child(`${m.name}.http`),
    messages: { topics: ctx.topics, brokers: settings.KAFKA_BROKERS, partitions: settings.BUS_PARTITIONS },
  });
  // Bun's fetch arguments (the request, the server) as Hono's (the request, its env: getConnInfo reads the server there).
  return (request, server) => app.fetch(request, server);
}

async function shutdown(
  servers: Server<undefined>[],
  running: RunningModule[],
  bus: Bus | null,
  db: Database,
  tracing: Tracing | null,
  log: Logger,
  settleStart?: () => Promise<void>,
) {
  log.info("stopping");
  await Promise.all(servers.map((s) => s.stop()));
  await settleStart?.();
  await Promise.all(running.map((r) => r.stop()));
  await bus?.stop();
  await db.close();
  // Last: the spans of everything above go out before the process ends.
  await tracing?.stop();
  log.info("stopped");
}
