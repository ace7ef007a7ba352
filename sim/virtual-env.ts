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

/** Installs simulated time starting at `start` (ms since the epoch) and ids drawn from `random`. */
export function installVirtualEnv(start: number, random: Random): VirtualEnv {
  if (installed) throw new Error("a virtual environment is installed already (one simulation at a time)");
  installed = true;
  let clock = start;
  let seq = 0;
  let nextId = 1;
  const timers = new Map<number, VirtualTimer>();

  // A Timer-shaped handle: code calls unref()/ref()/refresh() on what setTimeout returns.
  const handle = (id: number) => {
    const h = {
      id,
      unref: () => h,
      ref: () => h,
      hasRef: () => true,
      refresh: () => {
        const t = timers.get(id);
        if (t) t.due = clock + (t.every ?? 0);
        return h;
      },
      [Symbol.toPrimitive]: () => id,
    };
    return h;
  };
  type Handle = ReturnType<typeof handle>;
  const add = (fn: () => void, ms: number | undefined, every: boolean): Handle => {
    const delay = Math.max(0, Number(ms) || 0);
    const id = nextId++;
    timers.set(id, { id, due: clock + delay, seq: seq++, fn, every: every ? Math.max(1, delay) : null });
    return handle(id);
  };
  const clear = (h: unknown) => {
    if (h === null || h === undefined) return;
    const id = typeof h === "number" ? h : (h as Partial<Handle>).id;
    if (typeof id === "number") timers.delete(id);
  };

  class SimDate extends RealDate {
    constructor(...args: unknown[]) {
      if (args.length === 0) super(clock);
      else super(...(args as [string | number | Date]));
    }
    static override now(): number {
      return clock;
    }
  }

  const g = globalThis as unknown as Record<string, unknown>;
  g.Date = SimDate;
  g.setTimeout = (fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => add(() => fn(...args), ms, false);
  g.setInterval = (fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => add(() => fn(...args), ms, true);
  g.clearTimeout = clear;
  g.clearInterval = clear;
  (Bun as unknown as Record<string, unknown>).sleep = (ms: number | Date) =>
    new Promise<void>((resolve) => add(resolve, typeof ms === "number" ? ms : ms.getTime() - clock, false));
  performance.now = () => clock - start;
  (crypto as unknown as Record<string, unknown>).randomUUID = () => random.uuid();
  Math.random = () => random.float();

  const earliest = (): VirtualTimer | null => {
    let best: VirtualTimer | null = null;
    for (const t of timers.values()) if (!best || t.due < best.due || (t.due === best.due && t.seq < best.seq)) best = t;
    return best;
  };

  return {
    now: () => clock,
    nextDue: () => earliest()?.due ?? null,
    advanceTo(to) {
      if (to > clock) clock = to;
    },
    fireOne() {
      const t = earliest();
      if (!t || t.due > clock) return false;
      if (t.every === null) timers.delete(t.id);
      else Object.assign(t, { due: clock + t.every, seq: seq++ });
      t.fn();
      return true;
    },
    clearAll: () => timers.clear(),
    get pending() {
      return timers.size;
    },
    async idle() {
      // Microtasks all run before a macrotask: two real turns let promise chains (and PGlite) settle.
      for (let i = 0; i < 2; i++) await new Promise<void>((resolve) => real.setImmediate(resolve));
    },
    uninstall() {
      g.Date = RealDate;
      g.setTimeout = real.setTimeout;
      g.clearTimeout = real.clearTimeout;
      g.setInterval = real.setInterval;
      g.clearInterval = real.clearInterval;
      (Bun as unknown as Record<string, unknown>).sleep = real.sleep;
      performance.now = real.performanceNow;
      (crypto as unknown as Record<string, unknown>).randomUUID = real.randomUUID;
      Math.random = real.mathRandom;
      timers.clear();
      installed = false;
    },
  };
}
