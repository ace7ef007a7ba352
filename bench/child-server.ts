/** Starts a small server of the bench's own (a bench/*.ts script) as a child process, so its CPU is not the bench's or the shop's. */
import { join } from "node:path";
import { defer, trackPid, untrackPid } from "./cleanup";

/** A running child server. */
export interface ChildServer {
  /** The base URL the script printed as its first line. */
  url: string;
  pid: number;
  /** SIGKILL, then waits for the exit; also deferred, and safe to call twice. */
  stop(): Promise<void>;
}

/** Runs `bun bench/<script> ...args`, waits for the URL it prints on its first stdout line; `what` names it in errors and cleanup. */
export async function startChildServer(script: string, args: string[], what: string, onStop?: () => void): Promise<ChildServer> {
  const proc = Bun.spawn(["bun", join(import.meta.dir, script), ...args], { stdout: "pipe", stderr: "inherit" });
  trackPid(proc.pid);
  let stopped: Promise<void> | null = null;
  const stop = () =>
    (stopped ??= (async () => {
      proc.kill("SIGKILL");
      await proc.exited;
      untrackPid(proc.pid);
      onStop?.();
    })());
  defer(`stop the ${what}`, stop);
  const reader = proc.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`${what} exited before printing its URL`);
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return { url: text.trim(), pid: proc.pid, stop };
}
