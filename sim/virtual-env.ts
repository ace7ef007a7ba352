/**
 * Simulated time and ids for one simulator run, installed over the process's globals: Date
 * (Date.now, new Date() and so PGlite's now(), which reads the host clock), setTimeout /
 * setInterval / Bun.sleep (a virtual timer queue the scheduler fires in simulated time),
 * performance.now, crypto.randomUUID and Math.random (drawn from the seed).
 *
 * Patching the globals rather than injecting a clock into each module keeps production code
 * untouched, and covers every call site, including ones added later: a new `Date.now()` in a
 * module cannot silently make a run depend on the wall clock. Only one run at a time per process.
 */
import type { Random } from "./random";

/** A virtual timer. */
interface VirtualTimer {
  id: number;
  due: number;
  seq: number;
  fn: () => void;
  /** For setInterval: the period; null for a one-shot timer. */
  every: number | null;
}

/** The installed environment: its clock and timer queue, driven by the scheduler. */
export interface VirtualEnv {
  /** Simulated milliseconds since the epoch. */
  now(): number;
  /** Due time of the earliest timer, or null when none is set. */
  nextDue(): number | null;
  /** Moves the clock to `to` (never backwards) without firing anything. */
  advanceTo(to: number): void;
  /** Fires the earliest timer due at or before now, if any; returns whether one fired. */
  fireOne(): boolean;
  /** Forgets every timer (a crash: the process's timers die with it). */
  clearAll(): void;
  /** Timers set now. */
  readonly pending: number;
  /** Lets every microtask run (and real I/O complete) until the process is idle. */
  idle(): Promise<void>;
  /** Restores the real globals. */
  uninstall(): void;
}

const RealDate = Date;
const real = {
  setTimeout: globalThis.setTimeout,
  clearTimeout: globalThis.clearTimeout,
  setInterval: globalThis.setInterval,
  clearInterval: globalThis.clearInterval,
  setImmediate: globalThis.setImmediate,
  sleep: Bun.sleep,
  performanceNow: performance.now,
  randomUUID: crypto.randomUUID,
  mathRandom: Math.random,
};

let installed = false;

/** A Timer-shaped handle: code calls unref()/ref()/refresh() on what setTimeout returns. */
interface TimerHandle {
  id: number;
  unref(): TimerHandle;
  ref(): TimerHandle;
  hasRef(): boolean;
  refresh(): TimerHandle;
  [Symbol.toPrimitive](): number;
}

/** The simulated clock and its timers, fired in due order (ties in the order they were set). */
class TimerQueue {
  private seq = 0;
  private nextId = 1;
  readonly timers = new Map<number, VirtualTimer>();

  constructor(
    /** Simulated milliseconds since the epoch. */
    public clock: number,
  ) {}

  /** Sets a timer `ms` from now; `every`: it repeats with that period (at least 1 ms). */
  add(fn: () => void, ms: number | undefined, every: boolean): TimerHandle {
    const delay = Math.max(0, Number(ms) || 0);
    const id = this.nextId++;
    this.timers.set(id, { id, due: this.clock + delay, seq: this.seq++, fn, every: every ? Math.max(1, delay) : null });
    return this.handle(id);
  }

  /** Cancels the timer a handle (or its numeric id) names; anything else is ignored. */
  clear(h: unknown): void {
    if (h === null || h === undefined) return;
    const id = typeof h === "number" ? h : (h as Partial<TimerHandle>).id;
    if (typeof id === "number") this.timers.delete(id);
  }

  /** The timer due first, or null. */
  earliest(): VirtualTimer | null {
    let best: VirtualTimer | null = null;
    for (const t of this.timers.values()) if (!best || t.due < best.due || (t.due === best.due && t.seq < best.seq)) best = t;
    return best;
  }

  /** Fires the earliest timer due at or before now, if any; an interval is set again first. */
  fireOne(): boolean {
    const t = this.earliest();
    if (!t || t.due > this.clock) return false;
    if (t.every === null) this.timers.delete(t.id);
    else Object.assign(t, { due: this.clock + t.every, seq: this.seq++ });
    t.fn();
    return true;
  }

  private handle(id: number): TimerHandle {
    const h: TimerHandle = {
      id,
      unref: () => h,
      ref: () => h,
      hasRef: () => true,
      refresh: () => {
        const t = this.timers.get(id);
        if (t) t.due = this.clock + (t.every ?? 0);
        return h;
      },
      [Symbol.toPrimitive]: () => id,
    };
    return h;
  }
}

/** Puts the queue's clock and timers, and ids and floats drawn from `random`, in place of the real globals. */
function installGlobals(queue: TimerQueue, start: number, random: Random): void {
  class SimDate extends RealDate {
    constructor(...args: unknown[]) {
      if (args.length === 0) super(queue.clock);
      else super(...(args as [string | number | Date]));
    }
    static override now(): number {
      return queue.clock;
    }
  }
  const g = globalThis as unknown as Record<string, unknown>;
  g.Date = SimDate;
  g.setTimeout = (fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => queue.add(() => fn(...args), ms, false);
  g.setInterval = (fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => queue.add(() => fn(...args), ms, true);
  g.clearTimeout = (h: unknown) => queue.clear(h);
  g.clearInterval = (h: unknown) => queue.clear(h);
  (Bun as unknown as Record<string, unknown>).sleep = (ms: number | Date) =>
    new Promise<void>((resolve) => queue.add(resolve, typeof ms === "number" ? ms : ms.getTime() - queue.clock, false));
  performance.now = () => queue.clock - start;
  (crypto as unknown as Record<string, unknown>).randomUUID = () => random.uuid();
  Math.random = () => random.float();
}

/** Puts the real globals back. */
function restoreGlobals(): void {
  const g = globalThis as unknown as Record<string, unknown>;
  g.Date = RealDate;
  g.setTimeout = real.setTimeout;
  g.clearTimeout = real.clearTimeout;
  g.setInterval = real.setInterval;
  g.clearInterval = real.clearInterval;
  (Bun as unknown as Record<string, unknown>).sleep = real.sleep;
  performance.now = real.performanceNow;
  (crypto as unknown as Record<string, unknown>).randomUUID = real.randomUUID;
  Math.random = real.mathRandom;
}

/** Installs simulated time starting at `start` (ms since the epoch) and ids drawn from `random`. */
export function installVirtualEnv(start: number, random: Random): VirtualEnv {
  if (installed) throw new Error("a virtual environment is installed already (one simulation at a time)");
  installed = true;
  const queue = new TimerQueue(start);
  installGlobals(queue, start, random);
  return {
    now: () => queue.clock,
    nextDue: () => queue.earliest()?.due ?? null,
    advanceTo(to) {
      if (to > queue.clock) queue.clock = to;
    },
    fireOne: () => queue.fireOne(),
    clearAll: () => queue.timers.clear(),
    get pending() {
      return queue.timers.size;
    },
    async idle() {
      // Microtasks all run before a macrotask: two real turns let promise chains (and PGlite) settle.
      for (let i = 0; i < 2; i++) await new Promise<void>((resolve) => real.setImmediate(resolve));
    },
    uninstall() {
      restoreGlobals();
      queue.timers.clear();
      installed = false;
    },
  };
}
