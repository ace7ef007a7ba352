/**
 * What a person starting the shop sees: a progress line while the embedded database opens, then
 * one screen saying what runs where. Without a terminal, the same facts as log lines instead.
 */
import { existsSync, readdirSync } from "node:fs";
import { resolve } from "node:path";
import { BUILT_IN_CONFIG_DIR, type ModuleName, type Settings } from "../config";
import { describeServer } from "../db/connect-errors";
import type { DatabaseTarget } from "../db/database";
import type { Logger } from "../log";

/** What the shop runs and where, as the banner and the "ready" log line tell it. */
export interface StartFacts {
  modules: ModuleName[];
  mode: string;
  database: string;
  bus: string;
  /** Where the module YAML came from. */
  config: string;
  urls: Partial<Record<ModuleName, string>>;
  swagger: Partial<Record<ModuleName, string>>;
  /** The live order page (registry's `/`), when registry runs here. */
  live_page?: string;
  /** Where the admin token for deposits, receipts and /admin/* comes from (never the token itself). */
  admin_token: string;
  /** A `bun run audit` to paste, aimed at this process's modules (all three run here); absent otherwise. */
  audit?: string;
  ready_ms: number;
}

/** The database as a person reads it: PGlite's directory, or PostgreSQL's host and database (never the password). */
export function describeDatabase(target: DatabaseTarget): string {
  if (target.driver === "pglite") {
    if (!target.dataDir) return "PGlite in memory (nothing kept)";
    return target.unsafeNoFsync
      ? `PGlite in ${resolve(target.dataDir)}, NOT durable (PGLITE_UNSAFE_NO_FSYNC=true): a power cut can lose answered orders`
      : `PGlite in ${resolve(target.dataDir)} (every commit fsynced before its answer)`;
  }
  try {
    // Named as the errors name it (src/db/connect-errors.ts).
    const url = new URL(target.url);
    const database = decodeURIComponent(url.pathname.slice(1));
    const user = decodeURIComponent(url.username);
    return describeServer({
      host: [url.hostname.replace(/^\[(.*)\]$/, "$1")],
      port: [Number(url.port) || 5432],
      ...(database ? { database } : {}),
      ...(user ? { user } : {}),
    });
  } catch {
    return "PostgreSQL";
  }
}

/** A listening URL (`http://127.0.0.1:PORT`) as a person opens it: localhost unless HOST names a specific address. */
function browsable(url: string, host: string): string {
  const { port } = new URL(url);
  const local = ["0.0.0.0", "::", "127.0.0.1", "::1", "localhost"].includes(host);
  return `http://${local ? "localhost" : host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** The facts of a started shop; `urls` are the listening ones (shop.urls). */
export function startFacts(
  settings: Settings,
  target: DatabaseTarget,
  urls: Partial<Record<ModuleName, string>>,
  readyMs: number,
): StartFacts {
  const modules = settings.MODULES;
  const open: StartFacts["urls"] = {};
  const swagger: StartFacts["swagger"] = {};
  for (const name of modules) {
    const url = urls[name];
    if (!url) continue;
    open[name] = browsable(url, settings.HOST);
    swagger[name] = `${open[name]}/swagger/`;
  }
  const bus =
    settings.BUS === "kafka"
      ? `Kafka at ${settings.KAFKA_BROKERS.join(", ")} (${settings.BUS_SIGNING_KEY ? "records signed" : "records NOT signed: BUS_INSECURE_UNSIGNED_RECORDS=true"})`
      : `in memory, this process only (${settings.BUS_PARTITIONS} partitions per topic)`;
  const everything = modules.length === 3;
  const mode = everything
    ? `one process: ${modules.join(", ")}`
    : `${settings.BUS === "kafka" ? "service" : "one process"}: ${modules.join(", ")} only`;
  return {
    modules,
    mode,
    database: describeDatabase(target),
    bus,
    config: settings.CONFIG_DIR === BUILT_IN_CONFIG_DIR ? "built into the binary (there is no ./config)" : resolve(settings.CONFIG_DIR),
    urls: open,
    swagger,
    ...(open.registry ? { live_page: `${open.registry}/` } : {}),
    ...(open.registry && open.wallet && open.storage
      ? {
          // bun run audit reads ADMIN_TOKEN (environment or .env) as the shop does; a generated one must be given.
          audit: `bun run audit --registry-url ${open.registry} --wallet-url ${open.wallet} --storage-url ${open.storage}${settings.ADMIN_TOKEN ? "" : " --token <token>"}`,
        }
      : {}),
    admin_token: settings.ADMIN_TOKEN
      ? "ADMIN_TOKEN"
      : 'generated at start, in the log line "admin token (generated; set ADMIN_TOKEN to choose one)"',
    ready_ms: Math.round(readyMs),
  };
}

/** The one-screen banner for a terminal. */
export function formatBanner(facts: StartFacts): string {
  const row = (label: string, text: string) => `  ${label.padEnd(10)}${text}`;
  const lines = [
    "",
    `  Shop is ready in ${facts.ready_ms} ms`,
    "",
    row("mode", facts.mode),
    row("database", facts.database),
    row("bus", facts.bus),
    row("config", facts.config),
    "",
  ];
  const width = Math.max(...Object.values(facts.urls).map((u) => (u as string).length));
  for (const name of facts.modules) {
    const url = facts.urls[name];
    if (url) lines.push(row(name, `${url.padEnd(width)}   swagger ${facts.swagger[name]}`));
  }
  if (facts.live_page) lines.push(row("live page", facts.live_page));
  lines.push(
    "",
    row(
      "admin",
      `Authorization: Bearer <token>, the token ${facts.admin_token === "ADMIN_TOKEN" ? "from ADMIN_TOKEN" : facts.admin_token}`,
    ),
  );
  if (facts.audit) lines.push(row("audit", facts.audit));
  lines.push("", "  Ctrl-C stops it.", "");
  return lines.join("\n");
}

/** Tells that the shop is ready: the banner on a terminal, else one "ready" log line with the same facts. */
export function announceReady(facts: StartFacts, log: Logger, tty: boolean): void {
  if (tty) process.stderr.write(`${formatBanner(facts)}\n`);
  else log.info("ready", { ...facts });
}

/** A progress report around opening the database. */
export interface OpeningReport {
  /** The logger to hand the database: on a terminal, it holds info lines back until the progress line is done. */
  log: Logger;
  /** Ends the report: how it went. */
  done(ok: boolean): void;
}

/** True when PGlite will initialise `dataDir` (missing or empty), which takes seconds. */
const needsInit = (dataDir: string) => !existsSync(dataDir) || readdirSync(dataDir).length === 0;

/**
 * Reports opening the embedded database: on a terminal an updating line with the seconds so far,
 * then how long it took; otherwise one log line before (the database logs "PGlite open" after).
 * PostgreSQL and in-memory PGlite open at once: nothing to report.
 */
export function reportOpening(target: DatabaseTarget, log: Logger, tty: boolean): OpeningReport {
  if (target.driver !== "pglite" || !target.dataDir) return { log, done: () => {} };
  const dataDir = target.dataDir;
  const first = needsInit(dataDir);
  const text = `opening the embedded database in ${dataDir}${first ? " (first start initialises it: a few seconds)" : ""}…`;
  if (!tty) {
    log.info("opening the embedded database", { data_dir: dataDir, first_start: first });
    return { log, done: () => {} };
  }
  const started = performance.now();
  const seconds = () => ((performance.now() - started) / 1000).toFixed(1);
  let open = true;
  const held: (() => void)[] = [];
  process.stderr.write(`  ${text}`);
  const ticker = setInterval(() => process.stderr.write(`\r\x1b[K  ${text} ${seconds()} s`), 1000);
  ticker.unref();
  /** Ends the line (`outcome` replaces it; else it stays as it is), then writes the lines held back. */
  const end = (outcome?: string) => {
    if (!open) return;
    open = false;
    clearInterval(ticker);
    process.stderr.write(outcome === undefined ? "\n" : `\r\x1b[K  ${outcome}\n`);
    for (const write of held.splice(0)) write();
  };
  // Info and debug wait for the outcome (a few seconds); a warning or an error is shown at once.
  const hold = (write: () => void) => (open ? void held.push(write) : write());
  const through = (inner: Logger): Logger => ({
    debug: (m, f) => hold(() => inner.debug(m, f)),
    info: (m, f) => hold(() => inner.info(m, f)),
    warn: (m, f) => (end(), inner.warn(m, f)),
    error: (m, f) => (end(), inner.error(m, f)),
    child: (name) => through(inner.child(name)),
  });
  return {
    log: through(log),
    done: (ok) => end(ok ? `embedded database open in ${dataDir} (${seconds()} s)` : `${text} failed after ${seconds()} s`),
  };
}
