/** CLI: parse flags and environment, load config, start the chosen modules, stop on a signal. */
import { applyFlags, ConfigError, loadSettings } from "./config";
import { createLogger } from "./log";
import { startShop } from "./shop";

async function main(): Promise<void> {
  let env: ReturnType<typeof applyFlags>;
  let settings: ReturnType<typeof loadSettings>;
  try {
    env = applyFlags(Bun.argv.slice(2), process.env);
    settings = loadSettings(env);
  } catch (err) {
    return fail(err);
  }
  const log = createLogger(settings.LOG_LEVEL);
  let shop: Awaited<ReturnType<typeof startShop>>;
  try {
    shop = await startShop(settings, env, log);
  } catch (err) {
    return fail(err);
  }
  const onSignal = (signal: string) => {
    log.info("signal received", { signal });
    shop.stop().then(
      () => process.exit(0),
      (err) => {
        log.error("unclean stop", { err });
        process.exit(1);
      },
    );
  };
  process.once("SIGINT", () => onSignal("SIGINT"));
  process.once("SIGTERM", () => onSignal("SIGTERM"));
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
