/** Where one Kafka bus stands: stopping or not, its fatal failure, and the first join of all its groups. */
import type { FatalListener } from "../bus";

/** The state every piece of one bus checks, and the ways it changes. */
export interface Lifecycle {
  /** Set by stop(): waits end early, and no failure after it is fatal. */
  readonly stopping: boolean;
  /** Resolves once every consumer group has joined for the first time; rejects on a fatal failure or stop. */
  readonly allJoined: Promise<void>;
  /** Resolves allJoined. */
  markJoined(): void;
  /** Sleeps `ms`, or less if the bus stops meanwhile. */
  sleep(ms: number): Promise<void>;
  /** Throws when stop() was called since start() began. */
  stillStarting(): void;
  /** A failure the bus does not recover from: the process should stop and exit non-zero. */
  fail(err: Error): void;
  /** Registers a listener for that failure; called at once if it already happened. */
  onFatal(listener: FatalListener): void;
  /** The first step of stop(): marks the bus stopping, cuts waits short, rejects allJoined. */
  beginStop(): void;
}

/** A bus's lifecycle before start(). */
export function createLifecycle(): Lifecycle {
  let stopping = false;
  let failure: Error | null = null;
  const fatalListeners: FatalListener[] = [];
  /** Aborted by stop(): cuts the waits of a start in progress short. */
  const halt = new AbortController();
  let markJoined!: () => void;
  let failJoin!: (err: Error) => void;
  const allJoined = new Promise<void>((resolve, reject) => {
    markJoined = resolve;
    failJoin = reject;
  });
  allJoined.catch(() => {});
  return {
    get stopping() {
      return stopping;
    },
    allJoined,
    markJoined: () => markJoined(),
    sleep: (ms) => sleepUnlessAborted(ms, halt.signal),
    stillStarting() {
      if (stopping) throw new Error("Kafka bus stopped during start");
    },
    fail(err) {
      if (stopping || failure) return;
      failure = err;
      failJoin(err);
      for (const listener of fatalListeners) listener(err);
    },
    onFatal(listener) {
      fatalListeners.push(listener);
      if (failure) listener(failure);
    },
    beginStop() {
      stopping = true;
      halt.abort();
      failJoin(new Error("Kafka bus stopped"));
    },
  };
}

/** Sleeps `ms`, or less if `signal` is aborted meanwhile. */
function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
