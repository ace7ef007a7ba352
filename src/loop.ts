/**
 * The one loop of the periodic jobs (deadline sweeps, retention, the outbox relay and its
 * election, the live order feed): one pass at a time, a pass asked for while one runs comes
 * right after it (never lost, never two at once), the next pass on a timer, a stop that waits
 * for the pass under way. A pass's error is reported and the loop goes on.
 */
import { outsideRequest } from "./request-context";
import { periodic } from "./work-counters";

/** What a loop runs, and when. */
export interface LoopOptions {
  /** One pass. It may resolve with the milliseconds until the next one (else `every` says). */
  // biome-ignore lint/suspicious/noConfusingVoidType: a pass with nothing to say is a plain async function, whose type is Promise<void>
  run: () => Promise<number | undefined | void>;
  /**
   * Milliseconds from the end of a pass (or its failure) to the next; a function is asked after
   * each pass; null or absent: no next pass until `runNow` or `runIn`.
   */
  every?: number | null | (() => number | null);
  /** Told of a pass's error; the loop goes on. */
  failed: (err: unknown) => void;
  /**
   * A timer's wake-up, and the statements of the pass it starts, count as periodic work
   * (work-counters.ts); default true. A job that counts its own (or runs for a client) says false.
   */
  periodic?: boolean;
  /** The timer does not keep the process alive (default false). */
  unref?: boolean;
}

/** A running loop. */
export interface Loop {
  /** A pass now, or right after the one running (however many ask meanwhile, one pass). */
  runNow(): void;
  /** A pass in `ms` milliseconds, unless one is due sooner; starts an idle loop. */
  runIn(ms: number): void;
  /** Milliseconds until the next pass on the timer (0 if due), or null if none is scheduled. */
  nextRunIn(): number | null;
  /** True once `stop` was called. */
  stopped(): boolean;
  /** No more passes; resolves once the pass under way (if any) has ended. */
  stop(): Promise<void>;
}

/** Creates an idle loop: nothing runs until `runNow` or `runIn`. */
export function createLoop(opts: LoopOptions): Loop {
  return new PeriodicLoop(opts);
}

class PeriodicLoop implements Loop {
  private halted = false;
  private running: Promise<void> | null = null;
  /** Asked for while a pass ran: one more follows it. */
  private again = false;
  private timer: Timer | null = null;
  private dueAt = 0;

  constructor(private readonly opts: LoopOptions) {}

  runNow(): void {
    if (this.halted) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.passes().finally(() => {
      this.running = null;
      // Asked for between the last pass's end and here: not lost.
      if (this.again) this.runNow();
    });
  }

  runIn(ms: number): void {
    if (this.halted) return;
    const at = Date.now() + ms;
    if (this.timer) {
      if (this.dueAt <= at) return;
      clearTimeout(this.timer);
    }
    this.dueAt = at;
    // A periodic job's lines never carry the id of the request that started it.
    this.timer = outsideRequest(() => setTimeout(() => this.wake(), ms));
    if (this.opts.unref) this.timer.unref?.();
  }

  nextRunIn(): number | null {
    return this.timer ? Math.max(0, this.dueAt - Date.now()) : null;
  }

  stopped(): boolean {
    return this.halted;
  }

  async stop(): Promise<void> {
    this.halted = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  private wake(): void {
    this.timer = null;
    if (this.opts.periodic === false) this.runNow();
    else periodic(() => this.runNow());
  }

  /** Passes until none was asked for meanwhile; then the next on the timer. */
  private async passes(): Promise<void> {
    let ms: number | null;
    do {
      this.again = false;
      ms = await this.once();
    } while (this.again && !this.halted);
    if (ms !== null) this.runIn(ms);
  }

  /** One pass, its error reported; resolves with the milliseconds until the next (null: none). */
  private async once(): Promise<number | null> {
    try {
      const ms = await this.opts.run();
      return typeof ms === "number" ? ms : this.next();
    } catch (err) {
      this.opts.failed(err);
      return this.next();
    }
  }

  private next(): number | null {
    const every = this.opts.every;
    return typeof every === "function" ? every() : (every ?? null);
  }
}
