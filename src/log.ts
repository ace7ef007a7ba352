/**
 * Structured logging (pino) to stderr, filtered by level: one JSON object per line, or pretty
 * coloured lines on a terminal. No worker transport (it would lose the last lines at exit and
 * breaks in a `bun build --compile` binary).
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

/**
 * The ids of the span a line is written in, if any. Tracing (src/tracing/spans.ts) sets it when it
 * is switched on: the log sits below tracing and imports none of it.
 */
let traceIdsOfLine: () => LogFields | undefined = () => undefined;

/** Set by src/tracing/spans.ts only. */
export function setTraceIdsOfLine(ids: () => LogFields | undefined): void {
  traceIdsOfLine = ids;
}

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

/**
 * Creates a logger writing at or above `level`; lines logged while serving a request or a message
 * carry its request_id, and, while tracing is on, the trace_id and span_id of the span they are in.
 */
export function createLogger(level: LogLevel, opts: LoggerOptions = {}): Logger {
  // Colours only where a person reads stderr (not where stdout happens to be a terminal).
  const onTerminal = opts.destination === undefined && process.stderr.isTTY === true;
  const format = logFormatFor(opts.format, onTerminal);
  const lines =
    format === "json" ? jsonLines(level, opts.destination ?? stderrOncePerTurn()) : prettyLines(level, onTerminal, opts.destination);
  return bind(lines, "shop");
}

/**
 * stderr, written once per turn of the event loop: the lines logged while one batch of I/O was
 * handled go out in one synchronous write (pino's SonicBoom) right after it (setImmediate), and
 * whatever is left when the process exits is written then. A write per line was an eighth of
 * the shop's CPU under load (a request line per request, a step line per message).
 */
function stderrOncePerTurn(): pino.DestinationStream {
  // One per process, whatever the number of loggers: stderr is one, and so is its exit hook.
  stderrSink ??= stderrBuffer();
  return stderrSink;
}

let stderrSink: pino.DestinationStream | null = null;

function stderrBuffer(): pino.DestinationStream {
  const out = pino.destination({ fd: 2, sync: true });
  let pending: string[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (pending.length === 0) return;
    const text = pending.join("");
    pending = [];
    out.write(text);
  };
  process.on("exit", flush);
  return {
    write(line: string) {
      pending.push(line);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
  };
}

type Level = Exclude<LogLevel, "silent">;
const RANK: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50, silent: Number.POSITIVE_INFINITY };

/** Writes the lines of every component. */
interface Lines {
  enabled(lvl: Level): boolean;
  /** `fields` are plain already (plainFields). */
  write(lvl: Level, component: string, msg: string, fields: LogFields): void;
}

/**
 * One JSON object per line: level (its name), time (ISO), component, the fields, msg; pino's
 * layout. Serialised here with one JSON.stringify: pino's own serialiser cost 3-4 µs a line,
 * a large part of a cheap request's cost (GET /products at 30k requests/s).
 */
function jsonLines(level: LogLevel, sink: pino.DestinationStream): Lines {
  const min = RANK[level];
  return {
    enabled: (lvl) => RANK[lvl] >= min,
    write(lvl, component, msg, fields) {
      const time = new Date().toISOString();
      let text: string;
      try {
        text = JSON.stringify({ level: lvl, time, component, ...fields, msg });
      } catch (err) {
        // A cycle deeper than plainFields looks: the line still says what happened.
        text = JSON.stringify({ level: lvl, time, component, msg, log_error: `fields not serialisable: ${(err as Error).message}` });
      }
      sink.write(`${text}\n`);
    },
  };
}

/** Coloured single lines for a person (pino-pretty), synchronous. */
function prettyLines(level: LogLevel, colorize: boolean, destination: pino.DestinationStream | undefined): Lines {
  const root = pino(
    { level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime, serializers: { err: (value: unknown) => value } },
    pretty({
      destination: destination ?? 2,
      sync: true,
      colorize,
      translateTime: "SYS:HH:MM:ss.l",
      ignore: "component",
      messageFormat: "{component}: {msg}",
      singleLine: true,
    }),
  );
  const children = new Map<string, pino.Logger>();
  return {
    enabled: (lvl) => root.isLevelEnabled(lvl),
    write(lvl, component, msg, fields) {
      let child = children.get(component);
      if (!child) children.set(component, (child = root.child({ component })));
      child[lvl](fields, msg);
    },
  };
}

/** A Logger tagged with `component`. */
function bind(lines: Lines, component: string): Logger {
  const write = (lvl: Level, msg: string, fields?: LogFields) => {
    if (!lines.enabled(lvl)) return;
    const requestId = currentRequestId();
    let line = plainFields(fields ?? {});
    if (requestId !== undefined && !("request_id" in line)) line = { request_id: requestId, ...line };
    // Inside a span (tracing on), the line joins its trace: a viewer's trace id finds the lines, and back.
    const ids = "trace_id" in line ? undefined : traceIdsOfLine();
    if (ids) line = { ...line, ...ids };
    lines.write(lvl, component, msg, line);
  };
  return {
    debug: (m, f) => write("debug", m, f),
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
    child: (name) => bind(lines, `${component}.${name}`),
  };
}

/** How deep plainValue looks into nested objects and cause chains. */
const MAX_DEPTH = 8;

/** `fields` as JSON-friendly values: errors as name, message (and code, cause); bigints as strings. */
function plainFields(fields: LogFields): LogFields {
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
