/**
 * The run's trace: one line per step, fault and saga event, stamped with simulated time, and the
 * loggers that write the modules' saga lines into it (or keep nothing).
 */
import type { BusRecord } from "../src/bus/bus";
import type { LogFields, Logger } from "../src/log";
import type { VirtualEnv } from "./virtual-env";

/** The lines of one run, in the order things happened. */
export class Trace {
  readonly lines: string[] = [];

  constructor(
    private readonly env: VirtualEnv,
    /** Simulated time the run starts at (ms since the epoch): stamps count from here. */
    private readonly start: number,
  ) {}

  /** Appends `text`, stamped with the simulated seconds since the start. */
  line(text: string): void {
    this.lines.push(`${((this.env.now() - this.start) / 1000).toFixed(3).padStart(9)}s ${text}`);
  }
}

/** A record as the trace shows it: its type, message id and order. */
export function describeRecord(r: BusRecord): string {
  return `${r.headers["message-type"] ?? "?"} ${r.headers["message-id"] ?? "?"} (order ${r.key})`;
}

/** A logger that keeps nothing. */
export function silentLog(): Logger {
  const log: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => log };
  return log;
}

/** A module logger whose saga lines (info and up, with an order) go into the trace. */
export function traceLog(trace: (text: string) => unknown, component: string): Logger {
  const line = (level: string, msg: string, fields?: LogFields) => {
    if (msg === "listening" || msg === "PGlite open") return;
    const f = fields ?? {};
    const parts = [`log ${level} ${component}: ${msg}`];
    for (const k of ["step", "outcome", "reason", "order_id", "message_id"])
      if (f[k] !== undefined) parts.push(k === "order_id" ? `order ${String(f[k])}` : `${k}=${String(f[k])}`);
    if (f.err instanceof Error) parts.push(`err=${f.err.message.slice(0, 160)}`);
    trace(parts.join(" "));
  };
  const make = (c: string): Logger => ({
    debug() {},
    info: (m, f) => line("info", m, f),
    warn: (m, f) => line("warn", m, f),
    error: (m, f) => line("error", m, f),
    child: (name) => make(`${c}.${name}`),
  });
  return make(component);
}
