import { existsSync, mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";

/** A running librdkafka mock cluster (one broker on 127.0.0.1). */
export type KafkaMock = {
  /** Bootstrap servers, e.g. `127.0.0.1:38891`. */
  brokers: string;
  /** Terminates the mock broker and waits for it to exit. Safe to call twice. */
  stop(): Promise<void>;
  /** Takes the broker down (connections dropped and refused) or brings it back up. */
  setBroker(state: "down" | "up"): void;
  /**
   * Answers the next `count` requests of a Kafka API (e.g. 11, JoinGroup) with a Kafka error
   * code (e.g. 30, GROUP_AUTHORIZATION_FAILED), each after `delayMs`, as a broker refusing a client would.
   */
  failRequests(apiKey: number, count: number, errorCode: number, delayMs?: number): void;
};

const SOURCE = join(import.meta.dir, "kafka-mock", "launcher.c");
const CACHE_DIR = resolve(import.meta.dir, "..", "..", "node_modules", ".cache", "kafka-mock");
const BINARY = join(CACHE_DIR, "launcher");
const STARTUP_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;

type Launcher = Subprocess<"pipe", "pipe", "inherit">;

/**
 * Starts a mock Kafka broker with the given topics (`name` or `name:partitions`, default 3).
 * With KAFKA_MOCK_DEBUG=mock in the environment, the launcher logs the mock's group coordinator
 * (joins, syncs, rebalance timers) on stderr.
 */
export async function startKafkaMock(topics: string[]): Promise<KafkaMock> {
  await ensureLauncherBuilt();
  // stderr is inherited (not piped): a pending read on it would keep the event loop alive.
  const proc: Launcher = Bun.spawn([BINARY, ...topics], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  let brokers: string;
  try {
    brokers = await readFirstLine(proc);
  } catch (err) {
    proc.kill("SIGKILL");
    throw err;
  }
  // Don't keep the event loop alive: if the caller never stops us, our exit closes the
  // launcher's stdin and it shuts itself down.
  proc.unref();
  let stopping: Promise<void> | null = null;
  return {
    brokers,
    stop: () => (stopping ??= terminate(proc)),
    setBroker(state) {
      proc.stdin.write(`${state}\n`);
      proc.stdin.flush();
    },
    failRequests(apiKey, count, errorCode, delayMs = 0) {
      proc.stdin.write(`error ${apiKey} ${count} ${errorCode} ${delayMs}\n`);
      proc.stdin.flush();
    },
  };
}

/** Compiles launcher.c into the cache unless an up-to-date binary is already there. */
async function ensureLauncherBuilt(): Promise<void> {
  if (existsSync(BINARY) && statSync(BINARY).mtimeMs >= statSync(SOURCE).mtimeMs) return;
  if (!Bun.which("gcc")) throw new Error("kafka-mock: gcc not found on PATH (apt-get install gcc)");
  mkdirSync(CACHE_DIR, { recursive: true });
  // Build to a unique name and rename: concurrent test processes may race here.
  const tmp = `${BINARY}.${process.pid}.${Date.now()}`;
  const proc = Bun.spawn(["gcc", "-O1", "-o", tmp, SOURCE, "-lrdkafka"], { stdout: "pipe", stderr: "pipe" });
  const [out, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) {
    rmSync(tmp, { force: true });
    const hint = /rdkafka/.test(out) ? " - is librdkafka-dev installed? (apt-get install librdkafka-dev)" : "";
    throw new Error(`kafka-mock: compiling ${SOURCE} failed${hint}\n${out}`);
  }
  renameSync(tmp, BINARY);
}

/** Reads stdout up to the first newline; fails if the child exits first. */
async function readFirstLine(proc: Launcher): Promise<string> {
  const reader = proc.stdout.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const timeout = setTimeout(() => proc.kill("SIGKILL"), STARTUP_TIMEOUT_MS);
  try {
    while (!text.includes("\n")) {
      const { done, value } = await reader.read();
      if (done) {
        const code = await proc.exited;
        throw new Error(`kafka-mock: launcher exited (code ${code}) before printing its address; see its stderr above`);
      }
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    clearTimeout(timeout);
    reader.releaseLock();
  }
  const line = text.slice(0, text.indexOf("\n")).trim();
  if (!line) throw new Error("kafka-mock: launcher printed an empty address");
  return line;
}

/** SIGTERM, wait (the mock needs up to ~1 s to tear down), SIGKILL if it hangs. */
async function terminate(proc: Launcher): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill("SIGTERM");
  const timer = setTimeout(() => proc.kill("SIGKILL"), STOP_TIMEOUT_MS);
  try {
    await proc.exited;
  } finally {
    clearTimeout(timer);
  }
}
