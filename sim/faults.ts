/**
 * The faults a run injects and the state the pieces that inject them share: whether faults are
 * drawn now, which database fault is armed, whether a crash is due, and how many of each kind
 * happened.
 */
import type { Trace } from "./trace";

/** Fault kinds injected, counted per run. */
export const FAULT_KINDS = [
  "ack-lost",
  "crash-before-ack",
  "crash-in-transaction",
  "crash-idle",
  "db-error",
  "handler-error",
  "commit-answer-lost",
  "publish-failed",
  "publish-ack-lost",
  "time-jump",
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Database faults the scheduler arms, each as likely. */
export const ARMED_FAULTS = ["db-error", "handler-error", "crash-in-transaction", "commit-answer-lost"] as const;
type ArmedFault = (typeof ARMED_FAULTS)[number];

/** The run's fault state, one object shared by the database, the process, the delivery and the scheduler. */
export class Faults {
  readonly counts = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  /** Faults are drawn now: off while the process starts, and once the workload is placed. */
  injecting: boolean;
  /** A database fault that fires `countdown` statements (or units of work, for a lost answer) from now. */
  armed: { kind: ArmedFault; countdown: number } | null = null;
  /** Why the process is to crash once the current step's work has run, or null. */
  crashRequested: string | null = null;

  constructor(
    private readonly trace: Trace,
    on: boolean,
  ) {
    this.injecting = on;
  }

  /** Counts a fault of `kind` and traces it. */
  record(kind: FaultKind, text: string): void {
    this.counts[kind] += 1;
    this.trace.line(`FAULT ${kind}: ${text}`);
  }

  /** No more faults: the run settles. */
  stop(): void {
    this.injecting = false;
    this.armed = null;
  }
}
