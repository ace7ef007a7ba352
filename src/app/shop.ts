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
    : {
        driver: "pglite",
        dataDir: settings.DATA_DIR === ":memory:" ? null : settings.DATA_DIR,
        unsafeNoFsync: settings.PGLITE_UNSAFE_NO_FSYNC,
      };
}

/** How far the start behind the open HTTP services has come. */
type Phase = "bus" | "modules" | "joining" | "ready";

/** How far a start has come and what it has made: read by notReady, written by the start and by stop. */
interface StartState {
  phase: Phase;
  stopping: boolean;
  failure: Error | null;
  /** Once created. */
  bus: Bus | null;
}

/**
 * Starts `settings.MODULES`; module YAML comes from `settings.CONFIG_DIR` with `env` overrides.
 * Opens the database, migrates, initialises the modules and serves HTTP, then resolves; the bus
 * and the modules' background work start behind it (see Shop.ready). Until then `/health` is 503
 * with the reason and state-changing requests get 503 `not_ready`, so a restarted service answers
 * at once instead of staying dark while its consumer groups rejoin.
 */
export async function startShop(settings: Settings, env: Env, log: Logger, opts: StartOptions = {}): Promise<Shop> {
  const { chosen, configs, listeners, status } = bindModulePorts(settings, env, log);
  const target = databaseTarget(settings);
  // A data directory this start creates goes again if the start does not complete.
  const cleanup = target.driver === "pglite" && target.dataDir ? newDataDir(target.dataDir) : null;
  const tracing = startTracing(settings, settings.MODULES, log.child("tracing"));
  const db = await openShopDatabase(target, listeners, tracing, cleanup, log, opts.tty === true);
  const servers = listeners.map((l) => l.server);
  const running: RunningModule[] = [];
  const state: StartState = { phase: "bus", stopping: false, failure: null, bus: null };
  const notReady = () => notReadyReason(state);
  const urls: Shop["urls"] = {};
  const registries = serviceRegistries(chosen, db, tracing);
  const start: Start = { settings, log, chosen, configs, listeners, status, db, registries, running, state, notReady, urls };
  let bus: Bus;
  try {
    bus = await initModules(start);
    if (opts.signal?.aborted) throw new Error("stopped during start");
    mountModules(start, bus);
  } catch (err) {
    await shutdown(servers, running, state.bus, db, tracing, log).catch(() => {});
    cleanup?.(err);
    throw err;
  }
  const { ready, halt } = startBehind(bus, running, state, log, opts);
  let stopped: Promise<void> | null = null;
  return {
    urls,
    bus,
    db,
    ready,
    notReady,
    stop: () =>
      (stopped ??= (async () => {
        state.stopping = true;
        halt();
        await shutdown(servers, running, bus, db, tracing, log, async () => {
          // A start still waiting for the broker is cut short; one starting modules finishes first.
          if (state.phase === "bus") await bus.stop();
          await ready.catch(() => {});
        });
      })()),
  };
}

/** The chosen modules, their config, and their ports bound (503 with `status.text` until mounted). */
function bindModulePorts(settings: Settings, env: Env, log: Logger) {
  const chosen = settings.MODULES.map((name) => MODULES[name]);
  const configs = chosen.map((m) => loadModuleConfig(m.name, m.configSchema, settings.CONFIG_DIR, env));
  const ports = chosen.map((m, i) => ({
    module: m.name,
    port: (configs[i] as { port: number }).port,
    origin: portOrigin(m.name, settings.CONFIG_DIR, env),
  }));
  checkPorts(ports, settings.CONFIG_DIR, env);
  // Every port first: one in use is found before the database opens (nothing created, nothing
  // migrated). Until its app is mounted, each answers 503 with why (and Retry-After).
  const status = { text: "starting: opening the database" };
  const listeners = bindListeners(ports, settings.HOST, () => status.text);
  log.info("ports bound; 503 until started", {
    urls: Object.fromEntries(listeners.map((l) => [l.module, `http://127.0.0.1:${l.server.port}`])),
  });
  return { chosen, configs, listeners, status };
}

/** Opens the database, showing progress; if it cannot, releases the ports and tracing, removes a new data directory, and throws. */
async function openShopDatabase(
  target: DatabaseTarget,
  listeners: Listener[],
  tracing: Tracing | null,
  cleanup: ((err: unknown) => void) | null,
  log: Logger,
  tty: boolean,
): Promise<Database> {
  const opening = reportOpening(target, log.child("db"), tty);
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
  return db;
}

/** Why the shop is not ready, or null when it is. */
function notReadyReason(state: StartState): string | null {
  const { bus } = state;
  if (state.stopping) return "stopping";
  if (state.failure) return `failed: ${state.failure.message}`;
  switch (state.phase) {
    case "ready":
      return null;
    case "bus":
      return `starting: ${bus?.kind === "kafka" ? "connecting to Kafka" : "starting the bus"}`;
    case "modules":
      return "starting: background work";
    case "joining":
      return `starting: ${(bus && notJoinedReason(bus.consumers())) || "consumer groups joining"}`;
  }
}

/** One registry per service app: each port's /metrics reports its own service (and the shared database handle). */
function serviceRegistries(chosen: ShopModule[], db: Database, tracing: Tracing | null): Registry[] {
  return chosen.map(() => {
    const registry = new Registry();
    databaseMetrics(registry, db);
    workMetrics(registry);
    if (tracing) tracingMetrics(registry, tracing);
    return registry;
  });
}

/** A start in progress, past the database: what initModules and mountModules share. */
interface Start {
  settings: Settings;
  log: Logger;
  chosen: ShopModule[];
  configs: unknown[];
  listeners: Listener[];
  /** What a port answers (503) until its module is mounted. */
  status: { text: string };
  db: Database;
  registries: Registry[];
  /** Filled as each module is initialised (stopped in reverse by shutdown). */
  running: RunningModule[];
  state: StartState;
  notReady: () => string | null;
  urls: Shop["urls"];
}

/** Migrates each module's schema, creates the bus and initialises each module; returns the bus (also in `state.bus`). */
async function initModules(s: Start): Promise<Bus> {
  const { settings, log, chosen, configs, db, urls } = s;
  s.status.text = "starting: applying migrations";
  for (const m of chosen) await db.migrate(m.name, migrationsFolder(m.name, m.migrationsFolder));
  s.status.text = "starting: initialising the modules";
  const bus = (s.state.bus = await createBus(settings, log.child("bus")));
  const signing = recordSigning(settings, log.child("bus"));
  const writePrevious = pinnedWriters(settings.BUS_WRITE_PREVIOUS_VERSIONS);
  if (writePrevious.size > 0) log.warn("writing previous message versions until every reader is upgraded", { types: [...writePrevious] });
  for (const [i, m] of chosen.entries()) {
    const ctx = {
      config: configs[i],
      db,
      bus,
      log: log.child(m.name),
      siblings: urls,
      signing,
      writePrevious,
      metrics: s.registries[i] as Registry,
    };
    s.running.push(await m.init(ctx));
  }
  return bus;
}

/** Mounts each module's HTTP service on its port's listener and records its URL. */
function mountModules(s: Start, bus: Bus): void {
  const { settings, log, db, notReady } = s;
  for (const [i, m] of s.chosen.entries()) {
    const topics = (s.configs[i] as { topics: Topics }).topics;
    const listener = s.listeners[i] as Listener;
    listener.mount(
      serveModule(m, s.running[i] as RunningModule, { settings, db, bus, notReady, log, topics }, s.registries[i] as Registry),
    );
    s.urls[m.name] = `http://127.0.0.1:${listener.server.port}`;
    log.info("listening", { module: m.name, url: s.urls[m.name] });
  }
}

/**
 * Starts the bus, then the modules' background work, then waits for every consumer group to
 * join, advancing `state.phase`; a failure on the way or later marks the shop failed and calls
 * `opts.onFatal`. `halt` cuts the wait for the groups short (a stop).
 */
function startBehind(bus: Bus, running: RunningModule[], state: StartState, log: Logger, opts: StartOptions) {
  let halt!: () => void;
  const halted = new Promise<void>((resolve) => (halt = resolve));
  const fatal = (err: Error) => {
    if (state.stopping || state.failure) return;
    state.failure = err;
    log.error("failed after start; not ready", { err });
    opts.onFatal?.(err);
  };
  bus.onFatal(fatal);
  const stillStarting = () => {
    if (state.stopping) throw new Error("stopped during start");
  };
  const ready = (async () => {
    await bus.start();
    stillStarting();
    state.phase = "modules";
    for (const r of running) {
      await r.start();
      stillStarting();
    }
    state.phase = "joining";
    await Promise.race([bus.joined(), halted]);
    stillStarting();
    state.phase = "ready";
    // The caller announces it (src/app/start-banner.ts): a banner on a terminal, a "ready" log line otherwise.
  })();
  ready.catch((err: Error) => fatal(err));
  return { ready, halt };
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
