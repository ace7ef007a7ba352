/** CLI: parse flags and environment, load config, start the chosen modules, stop on a signal. */
import packageJson from "../../package.json";
import {
  applyFlags,
  ConfigError,
  type Env,
  helpText,
  loadSettings,
  MODULE_NAMES,
  type Settings,
  strayVariables,
  wantsHelp,
  wantsVersion,
} from "../config";
import { INIT_DATA_DIR_FLAG, initDataDir } from "../db/pglite-tuning";
import { createLogger, type Logger } from "../log";
import { MODULES } from "./modules";
import { databaseTarget, type Shop, startShop } from "./shop";
import { announceReady, startFacts } from "./start-banner";

async function main(): Promise<void> {
  const args = Bun.argv.slice(2);
  await answerWithoutStarting(args);
  let env: Env;
  let settings: Settings;
  try {
    env = applyFlags(args, process.env);
    settings = loadSettings(env);
  } catch (err) {
    return fail(err);
  }
  const log = createLogger(settings.LOG_LEVEL, { format: settings.LOG_FORMAT });
  for (const { name, meant } of strayVariables(process.env)) {
    log.warn(`${name} is not a setting of the shop and is ignored (did you mean ${meant}?)`, { variable: name, setting: meant });
  }
  await runShop(settings, env, log);
}

/** The runs that start no shop, and exit: initialising a data directory, --help, --version. */
async function answerWithoutStarting(args: string[]): Promise<void> {
  const [first, second] = args;
  if (first === INIT_DATA_DIR_FLAG && second) {
    // The binary run by itself to initialise a new PGlite data directory (see ensureDataDir).
    await initDataDir(second);
    process.exit(0);
  }
  if (wantsHelp(args)) {
    console.log(helpText(MODULE_NAMES.map((name) => MODULES[name])));
    process.exit(0);
  }
  if (wantsVersion(args)) {
    console.log(`shop ${packageJson.version} (bun ${Bun.version})`);
    process.exit(0);
  }
}

/** Starts the shop, stops it on SIGINT or SIGTERM or a fatal error, and announces it once ready. */
async function runShop(settings: Settings, env: Env, log: Logger): Promise<void> {
  const life = lifecycle(log);
  // Installed before the start: a signal while migrating or waiting for a broker still closes the database.
  process.on("SIGINT", () => life.onSignal("SIGINT"));
  process.on("SIGTERM", () => life.onSignal("SIGTERM"));
  const tty = process.stderr.isTTY === true;
  let shop: Shop;
  try {
    shop = life.shop = await startShop(settings, env, log, { signal: life.starting.signal, onFatal: life.onFatal, tty });
  } catch (err) {
    if (life.starting.signal.aborted) {
      log.info("stopped during start");
      process.exit(0);
    }
    return fail(err);
  }
  if (life.starting.signal.aborted) return life.stopAndExit(shop, 0);
  if (life.fatal) life.onFatal(life.fatal);
  const { urls } = shop;
  // performance.now() counts from the process's start.
  shop.ready.then(
    () => announceReady(startFacts(settings, databaseTarget(settings), urls, performance.now()), log, tty),
    () => {},
  );
}

/** What ends the process: a signal (before or after the start) or a fatal error, each stopping the shop once. */
function lifecycle(log: Logger) {
  const life = {
    /** Aborted by a signal that comes before the shop has started. */
    starting: new AbortController(),
    shop: null as Shop | null,
    exiting: false,
    signalled: null as { signal: string; at: number } | null,
    /** A fatal error reported before startShop returned, acted on once it has. */
    fatal: null as Error | null,
    /** Stops the shop cleanly once, then exits with `code` (or 1 if the stop itself failed). */
    stopAndExit(running: Shop, code: number) {
      if (life.exiting) return;
      life.exiting = true;
      running.stop().then(
        () => process.exit(code),
        (err) => {
          log.error("unclean stop", { err });
          process.exit(1);
        },
      );
    },
    onSignal(signal: string) {
      // Ctrl-C under `bun run dev` reaches this process twice: from the terminal (the whole process
      // group) and forwarded by the `bun run` wrapper. The first one stops the shop; a later one must
      // not end the process half-way (the default action would, leaving the database unclosed). The
      // echo of the same Ctrl-C (the same signal within a second) is not news; another one is said.
      if (life.signalled) {
        if (life.signalled.signal !== signal || performance.now() - life.signalled.at > 1000)
          log.info("signal received while stopping; still stopping", { signal });
        return;
      }
      life.signalled = { signal, at: performance.now() };
      log.info("signal received", { signal });
      if (!life.shop) return life.starting.abort();
      life.stopAndExit(life.shop, 0);
    },
    // After HTTP is up, a failure (the bus cannot start, a consumer crashed for good) stops the
    // shop cleanly and exits non-zero, so that a supervisor starts it again.
    onFatal(err: Error) {
      life.fatal = err;
      if (!life.shop) return;
      log.error("stopping after a fatal error", { err });
      life.stopAndExit(life.shop, 1);
    },
  };
  return life;
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
