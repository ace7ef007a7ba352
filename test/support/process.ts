/** Runs `src/app/main.ts` as a child process, as a user or a container would. */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";

const ROOT = join(import.meta.dir, "../..");

/**
 * The entry point of the checkout in `cwd`: src/app/main.ts, or src/main.ts in a checkout from
 * before the wiring moved to src/app/ (the bench may run an older revision as its baseline).
 */
export function shopEntry(cwd: string = ROOT): string {
  return existsSync(join(cwd, "src/app/main.ts")) ? "src/app/main.ts" : "src/main.ts";
}

/** A running shop process. */
export interface ShopProcess {
  proc: Subprocess<"ignore", "ignore", "pipe">;
  /** Base URL per module, read from its "listening" log lines. */
  urls: Record<string, string>;
  /** Every log line so far. */
  logs: string[];
  /** Settles on its "ready" log line (bus started, every consumer group joined); rejects if it exits first. */
  ready: Promise<void>;
  /** Milliseconds from the spawn to the last "listening" line, and to the "ready" line once seen. */
  timings: { listeningMs: number; readyMs: number | null };
  /** Sends a signal and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number>;
}

/** What startShopProcess waits for. */
export interface StartProcessOptions {
  /** Also wait for the "ready" log line (default true); false returns once every module listens. */
  waitReady?: boolean;
  /** What to run instead of `bun run src/app/main.ts` (the built binary, `bun run start`); `args` follow it. */
  command?: string[];
  /** Working directory (default: the project root). */
  cwd?: string;
  /** Its own process group, like a terminal's foreground job: `process.kill(-proc.pid, "SIGINT")` is Ctrl-C. */
  detached?: boolean;
  /** Keep only the newest this many log lines (a long bench at LOG_LEVEL=info writes several per order); default all. */
  maxLogLines?: number;
}

/**
 * Starts `bun run src/app/main.ts args` with `env` and waits until each module listens and,
 * unless `waitReady` is false, until the process is ready (its consumer groups joined).
 */
export async function startShopProcess(
  args: string[],
  env: Record<string, string | undefined>,
  expectModules: number,
  timeoutMs = 60_000,
  opts: StartProcessOptions = {},
): Promise<ShopProcess> {
  const spawnedAt = performance.now();
  const proc = Bun.spawn([...(opts.command ?? ["bun", "run", shopEntry(opts.cwd)]), ...args], {
    cwd: opts.cwd ?? ROOT,
    detached: opts.detached ?? false,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR, ...env },
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  const logs: string[] = [];
  const maxLogLines = opts.maxLogLines ?? Number.POSITIVE_INFINITY;
  const urls: Record<string, string> = {};
  const timings: ShopProcess["timings"] = { listeningMs: 0, readyMs: null };
  const listening = Promise.withResolvers<void>();
  const ready = Promise.withResolvers<void>();
  ready.promise.catch(() => {});
  (async () => {
    const decoder = new TextDecoder();
    let buffer = "";
    for await (const chunk of proc.stderr) {
      buffer += decoder.decode(chunk, { stream: true });
      let nl = buffer.indexOf("\n");
      while (nl >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        logs.push(line);
        if (logs.length > maxLogLines) logs.splice(0, logs.length - maxLogLines);
        if (process.env.TEST_LOG_LEVEL) console.error(line);
        try {
          const entry = JSON.parse(line) as { msg?: string; module?: string; url?: string };
          if (entry.msg === "listening" && entry.module && entry.url) {
            urls[entry.module] = entry.url;
            if (Object.keys(urls).length === expectModules) {
              timings.listeningMs = performance.now() - spawnedAt;
              listening.resolve();
            }
          } else if (entry.msg === "ready") {
            timings.readyMs = performance.now() - spawnedAt;
            ready.resolve();
          }
        } catch {}
        nl = buffer.indexOf("\n");
      }
    }
  })();
  proc.exited.then((code) => {
    const tail = logs.slice(-20).join("\n");
    listening.reject(new Error(`shop exited with ${code} before listening:\n${tail}`));
    ready.reject(new Error(`shop exited with ${code} before ready:\n${tail}`));
  });
  const waitFor = opts.waitReady === false ? listening.promise : Promise.all([listening.promise, ready.promise]);
  const what = opts.waitReady === false ? "listening" : "ready";
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`shop not ${what} after ${timeoutMs} ms:\n${logs.slice(-20).join("\n")}`)), timeoutMs);
  });
  try {
    await Promise.race([waitFor, timeout]);
  } catch (err) {
    // A detached start (`bun run <script>`) is a group: the wrapper and the shop under it.
    if (opts.detached) process.kill(-proc.pid, "SIGKILL");
    else proc.kill("SIGKILL");
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return {
    proc,
    urls,
    logs,
    ready: ready.promise,
    timings,
    async stop(signal = "SIGTERM") {
      proc.kill(signal);
      return proc.exited;
    },
  };
}
