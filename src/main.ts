/** CLI: parse flags and environment, load config, start the chosen modules, stop on a signal. */
import { applyFlags, ConfigError, type Env, loadSettings, type Settings } from "./config";
import { createLogger } from "./log";
import { type Shop, startShop } from "./shop";

async function main(): Promise<void> {
  let env: Env;
  let settings: Settings;
  try {
    env = applyFlags(Bun.argv.slice(2), process.env);
    settings = loadSettings(env);
  } catch (err) {
    return fail(err);
  }
  const log = createLogger(settings.LOG_LEVEL);
  const starting = new AbortController();
  let shop: Shop | null = null;
  const onSignal = (signal: string) => {
    log.info("signal received", { signal });
    if (!shop) return starting.abort();
    shop.stop().then(
      () => process.exit(0),
      (err) => {
        log.error("unclean stop", { err });
        process.exit(1);
      },
    );
  };
  // Installed before the start: a signal while waiting for a broker still closes the database.
  process.once("SIGINT", () => onSignal("SIGINT"));
  process.once("SIGTERM", () => onSignal("SIGTERM"));
  try {
    shop = await startShop(settings, env, log, starting.signal);
  } catch (err) {
    if (starting.signal.aborted) {
      log.info("stopped during start");
      process.exit(0);
    }
    return fail(err);
  }
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
