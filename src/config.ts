/** Process settings (.env, environment, flags) and module YAML files, validated once at start. */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { assetPath, IN_BINARY } from "./assets";
import { TopicsSchema } from "./contracts/topics";
import { LOG_FORMATS, LOG_LEVELS } from "./log";

/** The business modules a process can run. */
export const MODULE_NAMES = ["registry", "wallet", "storage"] as const;
export type ModuleName = (typeof MODULE_NAMES)[number];

/**
 * A setting that failed validation; `setting` names it as the user wrote it (a variable, a flag,
 * or `<file>: <key>`), `value` is the bad value as shown (quoted, secrets hidden), if there is one.
 */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    readonly setting: string,
    message: string,
    readonly value?: string,
  ) {
    super(`${setting}${value === undefined ? "" : `=${value}`}: ${message}`);
  }
}

const csv = (s: string) =>
  s
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);

/** A bus signing key: at least 32 characters; empty means unset. */
const signingKey = z
  .string()
  .min(32, "at least 32 characters")
  .optional()
  .or(z.literal("").transform(() => undefined));

/** The process settings: variables (and .env), or their flags. */
export const SettingsSchema = z.object({
  MODULES: z
    .string()
    .default(MODULE_NAMES.join(","))
    .transform(csv)
    .pipe(z.array(z.enum(MODULE_NAMES)).min(1, "name at least one module"))
    .transform((list) => [...new Set(list)]),
  BUS: z.enum(["memory", "kafka"]).default("memory"),
  KAFKA_BROKERS: z
    .string()
    .default("localhost:9092")
    .transform(csv)
    .pipe(z.array(z.string().regex(/^[^\s:]+:\d{1,5}$/, "expected host:port")).min(1)),
  KAFKA_CLIENT_ID: z.string().min(1).default("shop"),
  // Partitions per topic, in the memory bus and for topics the Kafka bus creates.
  BUS_PARTITIONS: z.coerce.number().int().min(1).max(256).default(3),
  // How long an in-process consumer waits for more records before a short batch (latency vs. batching).
  BUS_LINGER_MS: z.coerce.number().int().min(0).max(1000).default(5),
  // Consumer group timings: a member restarted after kill -9 joins once its old self's session
  // expires; a shorter session means a shorter wait (see README, "Kafka consumer timings").
  KAFKA_SESSION_TIMEOUT_MS: z.coerce.number().int().min(3000).max(300_000).default(10_000),
  KAFKA_HEARTBEAT_INTERVAL_MS: z.coerce.number().int().min(100).max(100_000).default(1000),
  // Unset: twice the session timeout (a JoinGroup may be held that long; see README).
  KAFKA_REBALANCE_TIMEOUT_MS: z
    .literal("")
    .transform(() => undefined)
    .or(z.coerce.number().int().min(1000).max(600_000))
    .optional(),
  KAFKA_FETCH_MAX_WAIT_MS: z.coerce.number().int().min(10).max(30_000).default(5000),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "expected a postgres:// URL")
    .optional()
    .or(z.literal("").transform(() => undefined)),
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(100).default(10),
  DATA_DIR: z.string().min(1).default("./data"),
  CONFIG_DIR: z.string().min(1).default("./config"),
  HOST: z.string().min(1).default("0.0.0.0"),
  // Largest request body read; 1 MiB lets an order of 10,000 items reach validation (400 items), not 413.
  BODY_LIMIT_BYTES: z.coerce.number().int().min(1024).max(10_485_760).default(1_048_576),
  // Bearer token for deposits, receipts and /admin/*; unset: a random one per start, logged once.
  ADMIN_TOKEN: z
    .string()
    .min(16, "at least 16 characters")
    .regex(/^[\x21-\x7e]+$/, "printable ASCII without spaces")
    .optional()
    .or(z.literal("").transform(() => undefined)),
  // HMAC key for bus records (README "Signed records"): every published record is signed, every
  // consumed one checked. Unset: nothing is signed or checked. The previous key is only accepted
  // when checking (a rolling key change); it needs BUS_SIGNING_KEY.
  BUS_SIGNING_KEY: signingKey,
  BUS_SIGNING_KEY_PREVIOUS: signingKey,
  // A file holding BUS_SIGNING_KEY (a Docker secret, say); read at start, surrounding whitespace
  // dropped. Not together with BUS_SIGNING_KEY.
  BUS_SIGNING_KEY_FILE: z.string().optional().or(z.literal("").transform(() => undefined)),
  // Kafka without a signing key is refused at start: anyone who can write to the topics could
  // make the services refund, release or complete orders. This says, by name, that it is wanted.
  BUS_INSECURE_UNSIGNED_RECORDS: z
    .enum(["true", "false", ""], { message: 'expected "true" or "false"' })
    .default("false")
    .transform((v) => v === "true"),
  LOG_LEVEL: z.enum(LOG_LEVELS).default("info"),
  // Unset: pretty lines when stderr is a terminal, one JSON object per line otherwise.
  LOG_FORMAT: z.enum(LOG_FORMATS).optional().or(z.literal("").transform(() => undefined)),
  // Names of `<MODULE>_*` variables that are not meant for the shop (set by a platform, say).
  IGNORE_VARS: z.string().default("").transform(csv),
});

type SettingName = keyof typeof SettingsSchema.shape;

/** The module YAML files the binary carries (the project's config/ at build time). */
export const BUILT_IN_CONFIG_DIR = assetPath("config");

/** One line per setting for `--help`; the type makes every setting need one. */
const SETTING_HELP: Record<SettingName, string> = {
  MODULES: "modules this process runs (registry, wallet, storage), comma-separated",
  BUS: "message bus: memory (one process) or kafka",
  KAFKA_BROKERS: "Kafka bootstrap brokers, host:port, comma-separated",
  KAFKA_CLIENT_ID: "Kafka client id",
  BUS_PARTITIONS: "partitions per topic (memory bus, and topics the Kafka bus creates)",
  BUS_LINGER_MS: "how long an in-process consumer waits to fill a batch",
  KAFKA_SESSION_TIMEOUT_MS: "consumer group session timeout",
  KAFKA_HEARTBEAT_INTERVAL_MS: "consumer group heartbeat interval",
  KAFKA_REBALANCE_TIMEOUT_MS: "consumer group rebalance timeout (unset: twice the session timeout)",
  KAFKA_FETCH_MAX_WAIT_MS: "longest a Kafka fetch waits for records",
  DATABASE_URL: "PostgreSQL URL, postgres://... (unset: embedded PGlite in DATA_DIR)",
  DATABASE_POOL_SIZE: "PostgreSQL connections per process",
  DATA_DIR: "PGlite's files (:memory: for a throwaway database)",
  CONFIG_DIR: "where <module>.yaml files are read from (the binary, without ./config: its built-in copy)",
  HOST: "address the HTTP services listen on",
  BODY_LIMIT_BYTES: "largest request body read",
  ADMIN_TOKEN: "bearer token for deposits, receipts and /admin/* (unset: random per start, logged once)",
  BUS_SIGNING_KEY: "HMAC key signing bus records, 32+ characters, the same in every service (required with BUS=kafka)",
  BUS_SIGNING_KEY_PREVIOUS: "previous signing key, still accepted when checking (needs BUS_SIGNING_KEY)",
  BUS_SIGNING_KEY_FILE: "file holding BUS_SIGNING_KEY (a Docker secret), instead of the variable",
  BUS_INSECURE_UNSIGNED_RECORDS: "true: run BUS=kafka without a signing key, so anyone who can write to the topics can forge records",
  LOG_LEVEL: `log level: ${LOG_LEVELS.join(", ")}`,
  LOG_FORMAT: `log format: ${LOG_FORMATS.join(", ")} (unset: pretty on a terminal, JSON otherwise)`,
  IGNORE_VARS: "<MODULE>_* variables that are not the shop's, comma-separated (not checked, not applied)",
};

/** Settings whose values are never printed. */
const SECRETS = new Set(["ADMIN_TOKEN", "BUS_SIGNING_KEY", "BUS_SIGNING_KEY_PREVIOUS"]);

/** How a bad value is shown: JSON-quoted, shortened; secrets hidden, a URL's password masked. */
export function showValue(name: string, value: unknown): string {
  if (SECRETS.has(name)) return typeof value === "string" ? `(hidden, ${value.length} characters)` : "(hidden)";
  let text = value === undefined ? "(missing)" : JSON.stringify(value) ?? String(value);
  if (name === "DATABASE_URL") text = text.replace(/(\/\/[^/@:]*:)[^@/]*@/, "$1***@");
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Validated process-level settings. */
export type Settings = z.infer<typeof SettingsSchema>;

/** Environment-like input: a map of names to string values. */
export type Env = Record<string, string | undefined>;

/** Command-line flags, each the kebab-case twin of a setting (`--modules` is MODULES). */
const FLAGS = [
  "modules",
  "bus",
  "kafka-brokers",
  "database-url",
  "data-dir",
  "config-dir",
  "log-level",
  "log-format",
  "registry-port",
  "wallet-port",
  "storage-port",
] as const;

const flagName = (flag: string) => flag.toUpperCase().replaceAll("-", "_");

/** Which entries of an env map applyFlags took from a flag (name -> `--flag`). */
const fromFlags = new WeakMap<Env, Map<string, string>>();

/** Where a setting's value came from, as the user wrote it: `--flag` or the variable's name. */
function origin(env: Env, name: string): string {
  return fromFlags.get(env)?.get(name) ?? name;
}

/** True when the arguments ask for help (`--help` or `-h`). */
export function wantsHelp(argv: string[]): boolean {
  return argv.includes("--help") || argv.includes("-h");
}

/** Folds command-line flags into the environment map; flags win over the environment. */
export function applyFlags(argv: string[], env: Env): Env {
  let values: Record<string, string | boolean | undefined>;
  try {
    const options = Object.fromEntries(FLAGS.map((f) => [f, { type: "string" as const }]));
    values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new ConfigError("arguments", `${(err as Error).message} (see --help)`);
  }
  const out: Env = { ...env };
  const flags = new Map<string, string>();
  for (const [flag, value] of Object.entries(values)) {
    if (typeof value !== "string") continue;
    out[flagName(flag)] = value;
    flags.set(flagName(flag), `--${flag}`);
  }
  fromFlags.set(out, flags);
  return out;
}

/** Parses process settings or throws a ConfigError naming the first bad setting and its value. */
export function loadSettings(given: Env): Settings {
  const env = withKeyFile(given);
  const parsed = SettingsSchema.safeParse(env, { reportInput: true });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = String(issue?.path[0] ?? "settings");
    const element = issue && issue.path.length > 1 ? `${showValue(name, issue.input)}: ` : "";
    throw new ConfigError(origin(env, name), `${element}${readable(issue)}`, showValue(name, env[name]));
  }
  if (parsed.data.BUS_SIGNING_KEY_PREVIOUS && !parsed.data.BUS_SIGNING_KEY) {
    throw new ConfigError("BUS_SIGNING_KEY_PREVIOUS", "set BUS_SIGNING_KEY too (the previous key only verifies)");
  }
  checkSigning(parsed.data, env);
  // The binary runs from any directory: without ./config (and CONFIG_DIR unset) it uses the copy it carries.
  if (IN_BINARY && !env.CONFIG_DIR && !existsSync(parsed.data.CONFIG_DIR)) parsed.data.CONFIG_DIR = BUILT_IN_CONFIG_DIR;
  return parsed.data;
}

/**
 * `env` with BUS_SIGNING_KEY read from BUS_SIGNING_KEY_FILE, when that is set; a key that fails
 * validation is then reported as the file's. Both set, or an unreadable file: a ConfigError.
 */
function withKeyFile(env: Env): Env {
  const file = env.BUS_SIGNING_KEY_FILE;
  if (!file) return env;
  if (env.BUS_SIGNING_KEY) throw new ConfigError("BUS_SIGNING_KEY_FILE", "BUS_SIGNING_KEY is set too: give the key one way", showValue("BUS_SIGNING_KEY_FILE", file));
  let key: string;
  try {
    key = readFileSync(file, "utf8").trim();
  } catch (err) {
    throw new ConfigError("BUS_SIGNING_KEY_FILE", `cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, showValue("BUS_SIGNING_KEY_FILE", file));
  }
  const out: Env = { ...env, BUS_SIGNING_KEY: key };
  fromFlags.set(out, new Map([...(fromFlags.get(env) ?? []), ["BUS_SIGNING_KEY", `BUS_SIGNING_KEY_FILE (${file})`]]));
  return out;
}

/**
 * Records on a shared bus are signed unless the operator says otherwise by name: with Kafka, other
 * processes and tools can write to the topics, and an unsigned record in a service's name would be
 * acted on. The in-process bus has no other writer and needs no key.
 */
function checkSigning(settings: Settings, env: Env): void {
  if (settings.BUS_INSECURE_UNSIGNED_RECORDS && settings.BUS_SIGNING_KEY) {
    throw new ConfigError("BUS_INSECURE_UNSIGNED_RECORDS", "a signing key is set too: remove one of the two (records are signed when there is a key)", "true");
  }
  if (settings.BUS !== "kafka" || settings.BUS_SIGNING_KEY || settings.BUS_INSECURE_UNSIGNED_RECORDS) return;
  throw new ConfigError(
    "BUS_SIGNING_KEY",
    `required with ${origin(env, "BUS") === "BUS" ? "BUS=kafka" : "--bus kafka"}: anyone who can write to the topics could otherwise make the services ` +
      "refund, release or complete orders. Give every service the same key of 32+ characters, e.g. " +
      "BUS_SIGNING_KEY=$(openssl rand -base64 48), or BUS_SIGNING_KEY_FILE=<a file holding it>; " +
      "to run with forgeable records anyway, set BUS_INSECURE_UNSIGNED_RECORDS=true (README, \"Signed records\")",
  );
}

/** A zod issue's message, plainer where zod's is obscure. */
function readable(issue: z.core.$ZodIssue | undefined): string {
  if (!issue) return "invalid";
  if (issue.code === "invalid_type" && issue.expected === "number") return "expected a number";
  return issue.message;
}

/** Settings every module's YAML shares. */
export const ModuleBaseSchema = z.object({
  port: z.coerce.number().int().min(0).max(65_535),
  consumer_group: z.string().min(1),
  topics: TopicsSchema,
  // A safety net only: every commit that writes to the outbox wakes the relay at once.
  outbox_poll_ms: z.coerce.number().int().min(10).max(600_000).default(10_000),
  // /health/ready fails (503) while more outbox rows than this wait to be published: a
  // service whose messages are not leaving should get no new work (README "Health").
  ready_max_outbox_backlog: z.coerce.number().int().min(0).default(10_000),
  // Retention (README "Retention"): how long each bookkeeping table keeps a row (fractions
  // allowed, e.g. 0.25 hours; the soak bench shortens every window to a minute).
  // Inbox ids and remembered rejections: as long as a redelivery can come, i.e. as long as the
  // broker keeps a record (Kafka's default log.retention.hours is 168).
  inbox_retention_hours: z.coerce.number().positive().max(87_600).default(168),
  // Published outbox rows, kept for inspection only (nothing is sent again once published).
  outbox_retention_hours: z.coerce.number().positive().max(87_600).default(24),
  // Resolved dead letters, counted from their resolution.
  dead_letter_retention_days: z.coerce.number().positive().max(3650).default(30),
  // Unresolved dead letters, counted from their arrival (they can be redriven only within the inbox window).
  unresolved_dead_letter_retention_days: z.coerce.number().positive().max(3650).default(90),
});

/** The parts of a zod schema's definition the key checks look at. */
interface Def {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
}

/** `schema` without its wrappers (default, optional, pipe, ...): the shape a value must have. */
function unwrap(schema: z.ZodType): Def {
  let def = schema._zod.def as unknown as Def;
  for (;;) {
    const inner = def.innerType ?? (def.type === "pipe" ? def.in : undefined);
    if (!inner) return def;
    def = inner._zod.def as unknown as Def;
  }
}

const isMapping = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** The first key in `value` (at any depth, through mappings and lists) that `schema` does not know. */
function unknownKey(schema: z.ZodType, value: unknown, path: string[] = []): { path: string[]; known: string[] } | null {
  const def = unwrap(schema);
  if (def.type === "object" && def.shape && isMapping(value)) {
    const known = Object.keys(def.shape);
    for (const [key, v] of Object.entries(value)) {
      const field = def.shape[key];
      if (!field) return { path: [...path, key], known };
      const deeper = unknownKey(field, v, [...path, key]);
      if (deeper) return deeper;
    }
  } else if (def.type === "array" && def.element && Array.isArray(value)) {
    for (const [i, v] of value.entries()) {
      const deeper = unknownKey(def.element, v, [...path, String(i)]);
      if (deeper) return deeper;
    }
  }
  return null;
}

/** Edit distance between two short strings. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length] as number;
}

/** The known name closest to `name`, if close enough to be a likely misspelling or a cut-off name. */
export function closest(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const k of known) {
    const d = k.startsWith(name) && name.length >= 3 ? 1 : distance(name, k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

const hint = (name: string, known: readonly string[], show: (k: string) => string = (k) => k) => {
  const near = closest(name, known);
  return near === undefined ? "" : ` (did you mean ${show(near)}?)`;
};

/** Variables with a module's prefix that are never its overrides: the audit script's `<MODULE>_URL`. */
const NOT_OVERRIDES = new Set(["URL"]);

/**
 * Reads `config/<module>.yaml`, applies environment overrides and validates it.
 * A key the module's schema does not know, in the file (at any depth) or as `<MODULE>_<KEY>`, is an
 * error. `<MODULE>_<KEY>` overrides a top-level scalar key (REGISTRY_PORT, WALLET_CONSUMER_GROUP);
 * `TOPIC_NEW_ORDERS`, `TOPIC_REJECTED_ORDERS`, `TOPIC_SUCCESS` override topic names. Exempt from
 * the check (and not applied): empty values, `<MODULE>_URL`, and the names listed in IGNORE_VARS.
 * Errors name where the bad value came from (variable, flag, or file and key) and the value.
 */
export function loadModuleConfig<S extends z.ZodType>(
  name: ModuleName,
  schema: S,
  configDir: string,
  env: Env,
): z.infer<S> {
  const file = join(configDir, `${name}.yaml`);
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file, "utf8")) ?? {};
  } catch (err) {
    throw new ConfigError(file, `cannot read: ${(err as Error).message}`);
  }
  if (!isMapping(raw)) {
    throw new ConfigError(file, "expected a mapping at the top level");
  }
  const unknown = unknownKey(schema, raw);
  if (unknown) {
    const key = unknown.path.at(-1) as string;
    throw new ConfigError(`${file}: ${unknown.path.join(".")}`, `unknown key${hint(key, unknown.known)}; known: ${unknown.known.join(", ")}`);
  }
  const shape = unwrap(schema).shape ?? {};
  const doc = { ...raw };
  /** Which variable set each overridden key, by its path ("port", "topics.success"). */
  const overrides = new Map<string, string>();
  const prefix = `${name.toUpperCase()}_`;
  const ignored = new Set(csv(env.IGNORE_VARS ?? ""));
  for (const [key, value] of Object.entries(env)) {
    // An empty value (a blanked line in .env) means "not set", as for the process settings.
    if (value === undefined || value === "" || !key.startsWith(prefix) || ignored.has(key)) continue;
    const rest = key.slice(prefix.length);
    if (NOT_OVERRIDES.has(rest)) continue;
    const field = rest.toLowerCase();
    const from = origin(env, key);
    const fieldSchema = shape[field];
    if (fieldSchema && rest !== rest.toUpperCase()) {
      throw new ConfigError(from, `write it in upper case: ${prefix}${rest.toUpperCase()}`, showValue(key, value));
    }
    if (!fieldSchema) {
      throw new ConfigError(
        from,
        `${name} has no setting "${field}"${hint(rest, Object.keys(shape).map((k) => k.toUpperCase()), (k) => prefix + k)}; ` +
          `if this variable is not meant for the shop, add it to IGNORE_VARS (or unset it) (see --help)`,
        showValue(key, value),
      );
    }
    const kind = unwrap(fieldSchema).type;
    if (kind === "object" || kind === "array") {
      throw new ConfigError(from, `${field} is a ${kind === "array" ? "list" : "mapping"}; set it in ${file}`, showValue(key, value));
    }
    doc[field] = value;
    overrides.set(field, key);
  }
  const topics = { ...(isMapping(doc.topics) ? doc.topics : {}) };
  for (const key of ["new_orders", "rejected_orders", "success"]) {
    const variable = `TOPIC_${key.toUpperCase()}`;
    const value = env[variable];
    if (!value) continue;
    topics[key] = value;
    overrides.set(`topics.${key}`, variable);
  }
  doc.topics = topics;
  const parsed = schema.safeParse(doc, { reportInput: true });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = (issue?.path ?? []).map(String);
    const message = readable(issue);
    const variable = overrides.get(path.join(".")) ?? overrides.get(path[0] ?? "");
    if (variable !== undefined) throw new ConfigError(origin(env, variable), message, showValue(variable, env[variable]));
    let value: unknown = doc;
    for (const p of path) value = isMapping(value) || Array.isArray(value) ? (value as Record<string, unknown>)[p] : undefined;
    throw new ConfigError(`${file}: ${path.join(".") || "(root)"}`, message, showValue("", value));
  }
  return parsed.data;
}

/** One module's port and where it was set, for checkPorts. */
export interface ModulePort {
  module: ModuleName;
  port: number;
}

/**
 * Two modules of one process on one port (0, "any free port", excepted) is a ConfigError naming
 * where each port was set. Called before anything opens.
 */
export function checkPorts(ports: ModulePort[], configDir: string, env: Env): void {
  const seen = new Map<number, ModuleName>();
  const where = (m: ModuleName) => {
    const variable = `${m.toUpperCase()}_PORT`;
    return env[variable] ? origin(env, variable) : `${join(configDir, `${m}.yaml`)}: port`;
  };
  for (const { module, port } of ports) {
    const other = seen.get(port);
    if (port !== 0 && other) {
      const variable = `${module.toUpperCase()}_PORT`;
      const shown = env[variable] ? showValue(variable, env[variable]) : String(port);
      throw new ConfigError(where(module), `${other} uses port ${port} too (${where(other)}); give each module its own port`, shown);
    }
    seen.set(port, module);
  }
}

/** A module as `--help` describes it. */
export interface ModuleHelp {
  name: ModuleName;
  configSchema: z.ZodType;
}

/** What each key of a module's YAML means (every key of every module schema needs a line; test/config.test.ts checks). */
export const MODULE_KEY_HELP: Readonly<Record<string, string>> = {
  port: "HTTP port (0: any free port)",
  consumer_group: "the module's consumer group on the bus",
  "topics.new_orders": "topic of new orders (OrderCreated)",
  "topics.rejected_orders": "topic of rejections (OrderRejected)",
  "topics.success": "topic of succeeded steps (StepSucceeded)",
  outbox_poll_ms: "how often the outbox relay looks anyway (every commit wakes it at once)",
  ready_max_outbox_backlog: "/health/ready is 503 while more outbox rows than this wait to be published",
  inbox_retention_hours: "how long processed message ids and remembered rejections are kept",
  outbox_retention_hours: "how long published outbox rows are kept",
  dead_letter_retention_days: "how long resolved dead letters are kept",
  unresolved_dead_letter_retention_days: "how long unresolved dead letters are kept",
  saga_deadline_seconds: "a pending order older than this is rejected (reason timeout)",
  unknown_order_grace_ms: "a message about an order registry never made is answered (unknown_order) after this",
  compensation_deadline_seconds: "a rejected order not compensated this long after is listed as stuck",
  max_pending_orders: "new orders wait while this many are pending (0: no limit)",
  admission_wait_ms: "how long a new order waits for room before 503 overloaded",
  idempotency_key_retention_hours: "how long an Idempotency-Key of POST /orders, a deposit or a receipt is remembered",
  live_max_clients: "live streams (GET /live/events) per process; past it a newcomer gets 503 unless a stuck client is shed",
  live_max_clients_per_address: "live streams from one client IP address (an IPv6 /64); past it 429 unless one of them is stuck",
  live_max_unsent_bytes: "a live client with more than this waiting for its socket when a poll starts is dropped",
  live_stall_timeout_ms: "a live client whose data waited this long without its socket taking it all is dropped",
  wallet_url: "wallet's URL for GET /admin/audit, when wallet runs elsewhere",
  storage_url: "storage's URL for GET /admin/audit, when storage runs elsewhere",
  products: "the catalogue, inserted on first start only",
  wallets: "starting balances, inserted on first start only",
  stock: "starting stock, inserted on first start only",
};

/** One setting as `--help` and the README's reference list it. */
export interface ReferenceRow {
  /** A process variable (`MODULES`), or a YAML key (`port`, `topics.success`). */
  key: string;
  /** The variable that sets or overrides it, and its flag, if any. */
  variable?: string;
  flag?: string;
  default: string;
  text: string;
}

/** The settings of one scope: the process, or one module's YAML. */
export interface ReferenceSection {
  title: string;
  /** The module whose YAML this is; absent for the process settings. */
  module?: ModuleName;
  rows: ReferenceRow[];
}

/** A field's default, as shown; "required" if it has none, "unset" if optional. */
function shownDefault(field: z.ZodType): string {
  const parsed = field.safeParse(undefined);
  if (!parsed.success) return "required";
  const v = parsed.data;
  if (v === undefined) return "unset";
  if (Array.isArray(v)) return v.length === 0 ? "none" : v.join(",");
  return String(v);
}

/**
 * Every setting, generated from the schemas so it cannot drift: process settings (variables and
 * flags), then each module's YAML keys with the variable overriding each, nested keys and list
 * items included. `--help` prints it; `bun run scripts/config-reference.ts` writes it into the README.
 */
export function configReference(modules: readonly ModuleHelp[]): ReferenceSection[] {
  const flagOf = new Map(FLAGS.map((f) => [flagName(f), `--${f}`]));
  const process: ReferenceSection = {
    title: "Process settings (environment, .env or flag)",
    rows: (Object.keys(SETTING_HELP) as SettingName[]).map((name) => ({
      key: name,
      variable: name,
      flag: flagOf.get(name),
      default: shownDefault(SettingsSchema.shape[name]),
      text: SETTING_HELP[name],
    })),
  };
  const sections = [process];
  for (const m of modules) {
    const rows: ReferenceRow[] = [];
    for (const [key, field] of Object.entries(unwrap(m.configSchema).shape ?? {})) {
      const def = unwrap(field);
      if (def.type === "object") {
        // A mapping (topics): each key on its own row; topic names have their TOPIC_* variables.
        for (const [sub, inner] of Object.entries(def.shape ?? {})) {
          const variable = key === "topics" ? `TOPIC_${sub.toUpperCase()}` : undefined;
          const parentDefault = field.safeParse(undefined);
          const value = parentDefault.success && isMapping(parentDefault.data) ? parentDefault.data[sub] : undefined;
          rows.push({ key: `${key}.${sub}`, variable, default: value === undefined ? shownDefault(inner) : String(value), text: MODULE_KEY_HELP[`${key}.${sub}`] ?? "" });
        }
      } else if (def.type === "array") {
        const items = def.element ? Object.keys(unwrap(def.element).shape ?? {}) : [];
        const text = `${MODULE_KEY_HELP[key] ?? ""}; a list of { ${items.join(", ")} }, in the file only`;
        rows.push({ key, default: shownDefault(field), text });
      } else {
        const variable = `${m.name.toUpperCase()}_${key.toUpperCase()}`;
        rows.push({ key, variable, flag: flagOf.get(variable), default: shownDefault(field), text: MODULE_KEY_HELP[key] ?? "" });
      }
    }
    sections.push({ title: `${m.name}: <CONFIG_DIR>/${m.name}.yaml`, module: m.name, rows });
  }
  return sections;
}

/** The `--help` text: every flag and variable with its default, and every key of the module YAML files. */
export function helpText(modules: readonly ModuleHelp[]): string {
  const sections = configReference(modules);
  const COLUMN = 44;
  const row = (r: ReferenceRow) => {
    const name = [r.key, r.variable !== r.key ? r.variable : undefined, r.flag].filter(Boolean).join(", ");
    const text = `${r.text} [default: ${r.default}]`;
    // A long name gets its own line, the text below it in the column.
    return name.length < COLUMN ? `  ${name.padEnd(COLUMN)} ${text}` : `  ${name}\n  ${"".padEnd(COLUMN)} ${text}`;
  };
  const lines = [
    "Usage: shop [--flag value ...]   (from the source tree: bun run src/main.ts, bun run dev)",
    "",
    "Starts the chosen modules of the shop in one process. Flags win over environment variables,",
    "which win over .env in the working directory and the module YAML files.",
  ];
  for (const [i, section] of sections.entries()) {
    lines.push("", `${section.title}:`, ...section.rows.map(row));
    if (i === 0) lines.push(`  ${"-h, --help".padEnd(COLUMN)} print this help and exit`);
  }
  lines.push(
    "",
    "<MODULE>_<KEY> overrides a top-level key of a module this process runs (REGISTRY_SAGA_DEADLINE_SECONDS=10);",
    "TOPIC_* override topic names for all. Lists are set in the file. An unknown key in a YAML file, or a",
    "REGISTRY_*, WALLET_* or STORAGE_* variable that names no key, is an error; exempt are empty values,",
    "<MODULE>_URL (scripts/audit.ts) and the names in IGNORE_VARS. The binary (bun run build) uses its",
    "built-in copy of config/ when ./config is absent and CONFIG_DIR is unset.",
  );
  return lines.join("\n");
}
