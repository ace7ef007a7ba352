/**
 * Structured logging (pino) to stderr, filtered by level: one JSON object per line, or pretty
 * coloured lines on a terminal. Writes are synchronous (no worker transport: it would lose the
 * last lines at exit and breaks in a `bun build --compile` binary).
 */
import pino from "pino";
import pretty from "pino-pretty";
import { currentRequestId } from "./request-context";

export const LOG_LEVELS = ["debug", "info", "warn", "error", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** `json`: one object per line (for machines); `pretty`: coloured text (for people at a terminal). */
export const LOG_FORMATS = ["json", "pretty"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Extra fields attached to a log line. */
export type LogFields = Record<string, unknown>;

/** A logger bound to a component name. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(component: string): Logger;
}

/** How createLogger writes. */
export interface LoggerOptions {
  /** Unset: pretty when stderr is a terminal, JSON otherwise. */
  format?: LogFormat;
  /** Where lines go; default stderr. */
  destination?: pino.DestinationStream;
}

/** The format to write in: the one asked for, else pretty on a terminal and JSON elsewhere. */
export function logFormatFor(format: LogFormat | undefined, isTTY: boolean): LogFormat {
  return format ?? (isTTY ? "pretty" : "json");
}

/** Creates a logger writing at or above `level`; lines logged while serving a request or a message carry its request_id. */
export function createLogger(level: LogLevel, opts: LoggerOptions = {}): Logger {
  // Colours only where a person reads stderr (not where stdout happens to be a terminal).
  const onTerminal = opts.destination === undefined && process.stderr.isTTY === true;
  const format = logFormatFor(opts.format, onTerminal);
  const root = pino(
    {
      level,
      base: undefined, // no pid, no hostname
      timestamp: pino.stdTimeFunctions.isoTime,
      // Fields are made plain before pino sees them (plainFields); its own `err` serializer would redo it.
      serializers: { err: (value: unknown) => value },
      // The level as its name ("info"), not pino's number, for whoever reads the JSON.
      formatters: format === "json" ? { level: (label: string) => ({ level: label }) } : {},
    },
    format === "json"
      ? (opts.destination ?? pino.destination({ fd: 2, sync: true }))
      : pretty({
          destination: opts.destination ?? 2,
          sync: true,
          colorize: onTerminal,
          translateTime: "SYS:HH:MM:ss.l",
          ignore: "component",
          messageFormat: "{component}: {msg}",
          singleLine: true,
        }),
  );
  return bind(root, "shop");
}

/** A Logger over `root` tagged with `component` (a child of the root, so the tag is never repeated). */
function bind(root: pino.Logger, component: string): Logger {
  const out = root.child({ component });
  const write = (lvl: Exclude<LogLevel, "silent">, msg: string, fields?: LogFields) => {
    if (!out.isLevelEnabled(lvl)) return;
    const requestId = currentRequestId();
    const line = plainFields(fields ?? {});
    out[lvl](requestId === undefined || "request_id" in line ? line : { request_id: requestId, ...line }, msg);
  };
  return {
    debug: (m, f) => write("debug", m, f),
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
    child: (name) => bind(root, `${component}.${name}`),
  };
}

/** How deep plainValue looks into nested objects and cause chains. */
const MAX_DEPTH = 8;

/** `fields` as JSON-friendly values: errors as name, message (and code, cause); bigints as strings. */
export function plainFields(fields: LogFields): LogFields {
  const out: LogFields = {};
  for (const [key, value] of Object.entries(fields)) out[key] = plainValue(value, 0);
  return out;
}

function plainValue(value: unknown, depth: number): unknown {
  if (typeof value === "bigint") return value.toString();
  if (value === null || typeof value !== "object" || depth >= MAX_DEPTH) return value;
  if (value instanceof Error) {
    const e: LogFields = { name: value.name, message: value.message };
    const code = (value as { code?: unknown }).code;
    if (typeof code === "string" || typeof code === "number") e.code = code;
    if (value.cause !== undefined) e.cause = plainValue(value.cause, depth + 1);
    return e;
  }
  if (Array.isArray(value)) return value.map((v) => plainValue(v, depth + 1));
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value; // Date, Buffer, URL...: their own toJSON
  const out: LogFields = {};
  for (const [key, v] of Object.entries(value)) out[key] = plainValue(v, depth + 1);
  return out;
}
