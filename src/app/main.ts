/** CLI: parse flags and environment, load config, start the chosen modules, stop on a signal. */
import packageJson from "../../package.json";
import { applyFlags, ConfigError, type Env, helpText, loadSettings, MODULE_NAMES, type Settings, strayVariables, wantsHelp, wantsVersion } from "../config";
import { INIT_DATA_DIR_FLAG, initDataDir } from "../db/pglite-tuning";
import { createLogger } from "../log";
import { MODULES } from "./modules";
import { databaseTarget, type Shop, startShop } from "./shop";
import { announceReady, startFacts } from "./start-banner";

async function main(): Promise<void> {
  let env: Env;
  let settings: Settings;
  const [first, second] = Bun.argv.slice(2);
  if (first === INIT_DATA_DIR_FLAG && second) {
    // The binary run by itself to initialise a new PGlite data directory (see ensureDataDir).
    await initDataDir(second);
    process.exit(0);
  }
  if (wantsHelp(Bun.argv.slice(2))) {
    console.log(helpText(MODULE_NAMES.map((name) => MODULES[name])));
    process.exit(0);
  }
  if (wantsVersion(Bun.argv.slice(2))) {
    console.log(`shop ${packageJson.version} (bun ${Bun.version})`);
    process.exit(0);
  }
  try {
    env = applyFlags(Bun.argv.slice(2), process.env);
    settings = loadSettings(env);
  } catch (err) {
    return fail(err);
  }
  const log = createLogger(settings.LOG_LEVEL, { format: settings.LOG_FORMAT });
  for (const { name, meant } of strayVariables(process.env)) {
    log.warn(`${name} is not a setting of the shop and is ignored (did you mean ${meant}?)`, { variable: name, setting: meant });
  }
  const starting = new AbortController();
  let shop: Shop | null = null;
  let exiting = false;
  /** Stops the shop cleanly once, then exits with `code` (or 1 if the stop itself failed). */
  const stopAndExit = (running: Shop, code: number) => {
    if (exiting) return;
    exiting = true;
    running.stop().then(
      () => process.exit(code),
      (err) => {
        log.error("unclean stop", { err });
        process.exit(1);
      },
    );
  };
  let signalled: { signal: string; at: number } | null = null;
  const onSignal = (signal: string) => {
    // Ctrl-C under `bun run dev` reaches this process twice: from the terminal (the whole process
    // group) and forwarded by the `bun run` wrapper. The first one stops the shop; a later one must
    // not end the process half-way (the default action would, leaving the database unclosed). The
    // echo of the same Ctrl-C (the same signal within a second) is not news; another one is said.
    if (signalled) {
      if (signalled.signal !== signal || performance.now() - signalled.at > 1000) log.info("signal received while stopping; still stopping", { signal });
      return;
    }
    signalled = { signal, at: performance.now() };
    log.info("signal received", { signal });
    if (!shop) return starting.abort();
    stopAndExit(shop, 0);
  };
  // Installed before the start: a signal while migrating or waiting for a broker still closes the database.
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  // After HTTP is up, a failure (the bus cannot start, a consumer crashed for good) stops the
  // shop cleanly and exits non-zero, so that a supervisor starts it again.
  let fatal: Error | null = null;
  const onFatal = (err: Error) => {
    fatal = err;
    if (!shop) return;
    log.error("stopping after a fatal error", { err });
    stopAndExit(shop, 1);
  };
  const tty = process.stderr.isTTY === true;
  try {
    shop = await startShop(settings, env, log, { signal: starting.signal, onFatal, tty });
  } catch (err) {
    if (starting.signal.aborted) {
      log.info("stopped during start");
      process.exit(0);
    }
    return fail(err);
  }
  if (starting.signal.aborted) return stopAndExit(shop, 0);
  if (fatal) onFatal(fatal);
  const { urls } = shop;
  // performance.now() counts from the process's start.
  shop.ready.then(() => announceReady(startFacts(settings, databaseTarget(settings), urls, performance.now()), log, tty), () => {});
}

function fail(err: unknown): void {
  if (err instanceof ConfigError) {
    console.error(`config error: ${err.message}`);
    process.exit(2);
  }
  console.error(`failed to start: ${(err as Error).message ?? err}`);
  process.exit(1);
}

await main();
