/** Starts shop processes (`bun run src/app/main.ts`), times them until healthy, and stops them. */
import { type ShopProcess, shopEntry, startShopProcess } from "../test/support/process";
import { trackPid, untrackPid } from "./cleanup";
import type { Pids } from "./proc-stats";

/** One `bun run src/app/main.ts` process: a name, its flags and environment, how many modules it runs. */
export interface ProcessSpec {
  name: string;
  args: string[];
  env: Record<string, string>;
  modules: number;
}

/** Base URL of each module. */
export interface ShopUrls {
  registry: string;
  wallet: string;
  storage: string;
}

/** A shop running as child processes. */
export interface RunningShop {
  urls: ShopUrls;
  pids: Pids;
  /** One base URL per process (by process name): its /metrics counts that process's database statements. */
  processUrls: Record<string, string>;
  /** Milliseconds from spawning the processes until every module's /health answered 200. */
  startMs: number;
  /** Log lines at level warn or error so far, prefixed with the process name. */
  warnings(): string[];
  /** SIGTERM to every process, SIGKILL after `graceMs`; resolves once all have exited. */
  stop(graceMs?: number): Promise<void>;
}

const HEALTHY_TIMEOUT_MS = 90_000;
/** The bench's shops log at info, as in production (several lines per order): the harness keeps only a tail for error reports. */
const LOG_TAIL_LINES = 1000;

/**
 * Spawns every process at once and waits until all modules listen and report healthy. With
 * `profileDir`, each runs under `bun --cpu-prof-md` and writes its profile there when it stops;
 * `cwd` is the checkout to run (default: this one).
 */
export async function launch(specs: ProcessSpec[], profileDir?: string, cwd?: string): Promise<RunningShop> {
  const started = performance.now();
  const command = profileDir ? ["bun", "--cpu-prof-md", `--cpu-prof-dir=${profileDir}`, shopEntry(cwd)] : undefined;
  const settled = await Promise.allSettled(
    specs.map((s) => startShopProcess(s.args, s.env, s.modules, HEALTHY_TIMEOUT_MS, { maxLogLines: LOG_TAIL_LINES, command, cwd })),
  );
  const procs = settled.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  for (const p of procs) trackPid(p.proc.pid);
  const stop = (graceMs = 10_000) => Promise.all(procs.map((p) => stopProcess(p, graceMs))).then(() => undefined);
  try {
    const failure = settled.find((r) => r.status === "rejected");
    if (failure) throw failure.reason;
    const urls: Record<string, string> = Object.fromEntries(procs.flatMap((p) => Object.entries(p.urls)));
    for (const m of ["registry", "wallet", "storage"]) if (!urls[m]) throw new Error(`no process runs module ${m}`);
    await Promise.all(Object.values(urls).map(waitHealthy));
    const startMs = performance.now() - started;
    const named = specs.map((s, i) => [s.name, procs[i] as ShopProcess] as const);
    return {
      urls: urls as unknown as ShopUrls,
      pids: Object.fromEntries(named.map(([name, p]) => [name, p.proc.pid])),
      processUrls: Object.fromEntries(named.map(([name, p]) => [name, Object.values(p.urls)[0] as string])),
      startMs,
      warnings: () => named.flatMap(([name, p]) => p.logs.filter(isWarning).map((line) => `${name}: ${line}`)),
      stop,
    };
  } catch (err) {
    await stop(0);
    throw err;
  }
}

/** Polls GET /health until it answers 200. */
async function waitHealthy(base: string): Promise<void> {
  const deadline = performance.now() + HEALTHY_TIMEOUT_MS;
  let last = "no answer";
  while (performance.now() < deadline) {
    try {
      const res = await fetch(`${base}/health?timeout=1`);
      if (res.status === 200) return void (await res.arrayBuffer());
      last = `${res.status} ${await res.text()}`;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await Bun.sleep(10);
  }
  throw new Error(`${base}/health not 200 after ${HEALTHY_TIMEOUT_MS} ms: ${last}`);
}

/** Stops one process: SIGTERM, then SIGKILL if it is still running after `graceMs`. */
async function stopProcess(p: ShopProcess, graceMs: number): Promise<void> {
  if (p.proc.exitCode === null && p.proc.signalCode === null) {
    p.proc.kill(graceMs > 0 ? "SIGTERM" : "SIGKILL");
    const timer = setTimeout(() => p.proc.kill("SIGKILL"), graceMs);
    await p.proc.exited;
    clearTimeout(timer);
  }
  untrackPid(p.proc.pid);
}

/** Whether a JSON log line is at level warn or error (non-JSON output counts too). */
function isWarning(line: string): boolean {
  try {
    const level = (JSON.parse(line) as { level?: string }).level;
    return level === "warn" || level === "error";
  } catch {
    return line.trim() !== "";
  }
}
