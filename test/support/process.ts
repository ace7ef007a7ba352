/** Runs `src/main.ts` as a child process, as a user or a container would. */
import { join } from "node:path";
import type { Subprocess } from "bun";

const ROOT = join(import.meta.dir, "../..");

/** A running shop process. */
export interface ShopProcess {
  proc: Subprocess<"ignore", "ignore", "pipe">;
  /** Base URL per module, read from its "listening" log lines. */
  urls: Record<string, string>;
  /** Every log line so far. */
  logs: string[];
  /** Sends a signal and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number>;
}

/** Starts `bun run src/main.ts args` with `env` and waits until each module listens. */
export async function startShopProcess(
  args: string[],
  env: Record<string, string | undefined>,
  expectModules: number,
  timeoutMs = 60_000,
): Promise<ShopProcess> {
  const proc = Bun.spawn(["bun", "run", "src/main.ts", ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR, ...env },
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  const logs: string[] = [];
  const urls: Record<string, string> = {};
  let ready!: () => void;
  let failed!: (e: Error) => void;
  const listening = new Promise<void>((res, rej) => {
    ready = res;
    failed = rej;
  });
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
        if (process.env.TEST_LOG_LEVEL) console.error(line);
        try {
          const entry = JSON.parse(line) as { msg?: string; module?: string; url?: string };
          if (entry.msg === "listening" && entry.module && entry.url) {
            urls[entry.module] = entry.url;
            if (Object.keys(urls).length === expectModules) ready();
          }
        } catch {}
        nl = buffer.indexOf("\n");
      }
    }
  })();
  proc.exited.then((code) => failed(new Error(`shop exited with ${code} before listening:\n${logs.slice(-20).join("\n")}`)));
  const timer = setTimeout(() => failed(new Error(`shop not listening after ${timeoutMs} ms:\n${logs.slice(-20).join("\n")}`)), timeoutMs);
  try {
    await listening;
  } catch (err) {
    proc.kill("SIGKILL");
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return {
    proc,
    urls,
    logs,
    async stop(signal = "SIGTERM") {
      proc.kill(signal);
      return proc.exited;
    },
  };
}
