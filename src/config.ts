/** Process settings (.env, environment, flags) and module YAML files, validated once at start. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { LOG_LEVELS } from "./log";

/** The business modules a process can run. */
export const MODULE_NAMES = ["registry", "wallet", "storage"] as const;
export type ModuleName = (typeof MODULE_NAMES)[number];

/** A setting that failed validation; `setting` names it as the user wrote it. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(`${setting}: ${message}`);
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

const SettingsSchema = z.object({
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
  LOG_LEVEL: z.enum(LOG_LEVELS).default("info"),
});

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
  "registry-port",
  "wallet-port",
  "storage-port",
] as const;

/** Folds command-line flags into the environment map; flags win over the environment. */
export function applyFlags(argv: string[], env: Env): Env {
  let values: Record<string, string | boolean | undefined>;
  try {
    const options = Object.fromEntries(FLAGS.map((f) => [f, { type: "string" as const }]));
    values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new ConfigError("arguments", (err as Error).message);
  }
  const out: Env = { ...env };
  for (const [flag, value] of Object.entries(values)) {
    if (typeof value === "string") out[flag.toUpperCase().replaceAll("-", "_")] = value;
  }
  return out;
}

/** Parses process settings or throws a ConfigError naming the first bad setting. */
export function loadSettings(env: Env): Settings {
  const parsed = SettingsSchema.safeParse(env);
  if (!parsed.success) throw configErrorFrom(parsed.error, "");
  if (parsed.data.BUS_SIGNING_KEY_PREVIOUS && !parsed.data.BUS_SIGNING_KEY) {
    throw new ConfigError("BUS_SIGNING_KEY_PREVIOUS", "set BUS_SIGNING_KEY too (the previous key only verifies)");
  }
  return parsed.data;
}

/** Topic names; the defaults are the seed's. */
export const TopicsSchema = z
  .object({
    new_orders: z.string().min(1).default("new_orders"),
    rejected_orders: z.string().min(1).default("rejected_orders"),
    success: z.string().min(1).default("success_topics"),
  })
  .prefault({});
export type Topics = z.infer<typeof TopicsSchema>;

/** Settings every module's YAML shares. */
export const ModuleBaseSchema = z.object({
  port: z.coerce.number().int().min(0).max(65_535),
  consumer_group: z.string().min(1),
  topics: TopicsSchema,
  // A safety net only: every commit that writes to the outbox wakes the relay at once.
  outbox_poll_ms: z.coerce.number().int().min(10).max(600_000).default(10_000),
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

/**
 * Reads `config/<module>.yaml`, applies environment overrides and validates it.
 * `<MODULE>_<KEY>` overrides a top-level scalar key (REGISTRY_PORT, WALLET_CONSUMER_GROUP);
 * `TOPIC_NEW_ORDERS`, `TOPIC_REJECTED_ORDERS`, `TOPIC_SUCCESS` override topic names.
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
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ConfigError(file, "expected a mapping at the top level");
  }
  const doc = { ...(raw as Record<string, unknown>) };
  const prefix = `${name.toUpperCase()}_`;
  for (const [key, value] of Object.entries(env)) {
    // An empty value (a blanked line in .env) means "not set", as for the process settings.
    if (value === undefined || value === "") continue;
    if (key.startsWith(prefix)) {
      const field = key.slice(prefix.length).toLowerCase();
      if (typeof doc[field] !== "object" || doc[field] === null) doc[field] = value;
    }
  }
  const topics = { ...((doc.topics as Record<string, unknown> | undefined) ?? {}) };
  for (const key of ["new_orders", "rejected_orders", "success"]) {
    const value = env[`TOPIC_${key.toUpperCase()}`];
    if (value) topics[key] = value;
  }
  doc.topics = topics;
  const parsed = schema.safeParse(doc);
  if (!parsed.success) throw configErrorFrom(parsed.error, `${name}.yaml: `);
  return parsed.data;
}

function configErrorFrom(error: z.ZodError, prefix: string): ConfigError {
  const issue = error.issues[0];
  const path = issue?.path.join(".") || "(root)";
  return new ConfigError(`${prefix}${path}`, issue?.message ?? "invalid");
}
