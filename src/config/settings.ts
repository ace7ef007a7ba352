/** The process settings (variables, .env or flags): their schema, what each means, and loading them with the signing-key rules. */
import { existsSync, readFileSync } from "node:fs";
import { z } from "zod";
import { assetPath, IN_BINARY } from "../assets";
import { MESSAGES, type MessageType, PREVIOUS_VERSIONS, type PreviousVersions } from "../contracts";
import { LOG_FORMATS, LOG_LEVELS } from "../log";
import { ConfigError, readable, showValue } from "./errors";
import { type Env, origin, withValueFrom } from "./flags";

/** The business modules a process can run. */
export const MODULE_NAMES = ["registry", "wallet", "storage"] as const;
export type ModuleName = (typeof MODULE_NAMES)[number];

/** A comma-separated list, items trimmed, empty items dropped. */
export const csv = (s: string) =>
  s
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);

/** Shortest bus signing key accepted (characters). */
const MIN_SIGNING_KEY_LENGTH = 32;

/** A bus signing key: at least MIN_SIGNING_KEY_LENGTH characters; empty means unset. */
const signingKey = z
  .string()
  .min(MIN_SIGNING_KEY_LENGTH, `at least ${MIN_SIGNING_KEY_LENGTH} characters`)
  .optional()
  .or(z.literal("").transform(() => undefined));

/** An OTLP/HTTP endpoint: an http(s) URL; empty means unset. */
const otlpUrl = z
  .url({ protocol: /^https?$/, message: "expected an http:// or https:// URL" })
  .optional()
  .or(z.literal("").transform(() => undefined));

/** OTLP's transports: JSON over HTTP only (what the exporter, src/tracing/export.ts, speaks). */
const otlpProtocol = z
  .enum(["http/json", ""], {
    message: 'only "http/json" is supported (OTLP/HTTP with JSON bodies, which Jaeger, Tempo and the OpenTelemetry Collector accept)',
  })
  .optional()
  .transform(() => "http/json" as const);

/** OTEL_TRACES_SAMPLER's values (OpenTelemetry's names). */
const TRACE_SAMPLERS = [
  "always_on",
  "always_off",
  "traceidratio",
  "parentbased_always_on",
  "parentbased_always_off",
  "parentbased_traceidratio",
] as const;
export type TraceSampler = (typeof TRACE_SAMPLERS)[number];

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
  // expires; a shorter session means a shorter wait (see docs/bus.md, "Kafka consumer timings").
  KAFKA_SESSION_TIMEOUT_MS: z.coerce.number().int().min(3000).max(300_000).default(10_000),
  KAFKA_HEARTBEAT_INTERVAL_MS: z.coerce.number().int().min(100).max(100_000).default(1000),
  // Unset: twice the session timeout (a JoinGroup may be held that long; see docs/bus.md).
  KAFKA_REBALANCE_TIMEOUT_MS: z
    .literal("")
    .transform(() => undefined)
    .or(z.coerce.number().int().min(1000).max(600_000))
    .optional(),
  KAFKA_FETCH_MAX_WAIT_MS: z.coerce.number().int().min(10).max(30_000).default(5000),
  // For tests against librdkafka's mock broker only: turns on the patched kafkajs's workarounds
  // for it (patches/kafkajs@2.2.4.patch). Refused without BUS=kafka, and at start against a
  // broker that is not the mock; a Kafka broker needs none of them.
  KAFKA_MOCK_BROKER_QUIRKS: z
    .enum(["true", "false", ""], { message: 'expected "true" or "false"' })
    .default("false")
    .transform((v) => v === "true"),
  // Message types (or `all`) written at their previous version during a rolling upgrade; checked by loadSettings.
  BUS_WRITE_PREVIOUS_VERSIONS: z.string().default("").transform(csv),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "expected a postgres:// URL")
    .optional()
    .or(z.literal("").transform(() => undefined)),
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(100).default(10),
  DATA_DIR: z.string().min(1).default("./data"),
  // PGlite as it comes: commits not fsynced, so an OS crash or a power cut can lose acknowledged
  // orders or damage DATA_DIR. For measuring what durability costs, never for data that matters.
  PGLITE_UNSAFE_NO_FSYNC: z
    .enum(["true", "false", ""], { message: 'expected "true" or "false"' })
    .default("false")
    .transform((v) => v === "true"),
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
  // HMAC key for bus records (docs/security.md, "Signed records"): every published record is signed, every
  // consumed one checked. Unset: nothing is signed or checked. The previous key is only accepted
  // when checking (a rolling key change); it needs BUS_SIGNING_KEY.
  BUS_SIGNING_KEY: signingKey,
  BUS_SIGNING_KEY_PREVIOUS: signingKey,
  // A file holding BUS_SIGNING_KEY (a Docker secret, say); read at start, surrounding whitespace
  // dropped. Not together with BUS_SIGNING_KEY.
  BUS_SIGNING_KEY_FILE: z
    .string()
    .optional()
    .or(z.literal("").transform(() => undefined)),
  // A file holding ADMIN_TOKEN (compose's keys service writes one for all three services).
  ADMIN_TOKEN_FILE: z
    .string()
    .optional()
    .or(z.literal("").transform(() => undefined)),
  // Kafka without a signing key is refused at start: anyone who can write to the topics could
  // make the services refund, release or complete orders. This says, by name, that it is wanted.
  BUS_INSECURE_UNSIGNED_RECORDS: z
    .enum(["true", "false", ""], { message: 'expected "true" or "false"' })
    .default("false")
    .transform((v) => v === "true"),
  LOG_LEVEL: z.enum(LOG_LEVELS).default("info"),
  // Unset: pretty lines when stderr is a terminal, one JSON object per line otherwise.
  LOG_FORMAT: z
    .enum(LOG_FORMATS)
    .optional()
    .or(z.literal("").transform(() => undefined)),
  // Names of `<MODULE>_*` variables that are not meant for the shop (set by a platform, say).
  IGNORE_VARS: z.string().default("").transform(csv),
  // OpenTelemetry's own variables (docs/operations.md, "Traces"): spans are made and exported only when an
  // OTLP endpoint is set; unset, tracing is off and costs one boolean test per span site.
  OTEL_EXPORTER_OTLP_ENDPOINT: otlpUrl,
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: otlpUrl,
  OTEL_EXPORTER_OTLP_PROTOCOL: otlpProtocol,
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: otlpProtocol,
  OTEL_TRACES_EXPORTER: z
    .enum(["otlp", "console", "none", ""])
    .default("otlp")
    .transform((v) => v || "otlp"),
  OTEL_SERVICE_NAME: z
    .string()
    .max(200)
    .optional()
    .or(z.literal("").transform(() => undefined)),
  OTEL_TRACES_SAMPLER: z
    .enum(["", ...TRACE_SAMPLERS])
    .default("parentbased_always_on")
    .transform((v) => (v || "parentbased_always_on") as TraceSampler),
  OTEL_TRACES_SAMPLER_ARG: z
    .literal("")
    .transform(() => undefined)
    .or(z.coerce.number().min(0).max(1))
    .optional(),
  OTEL_SDK_DISABLED: z
    .enum(["true", "false", ""], { message: 'expected "true" or "false"' })
    .default("false")
    .transform((v) => v === "true"),
});

/** Validated process-level settings. */
export type Settings = z.infer<typeof SettingsSchema>;

/** One line per setting for `--help` and docs/configuration.md; the type makes every setting need one. */
export const SETTING_HELP: Record<keyof typeof SettingsSchema.shape, string> = {
  MODULES: "modules this process runs (registry, wallet, storage), comma-separated",
  BUS: "message bus: memory (one process) or kafka",
  KAFKA_BROKERS: "Kafka bootstrap brokers, host:port, comma-separated",
  KAFKA_CLIENT_ID: "Kafka client id",
  BUS_PARTITIONS: "partitions per topic (memory bus, and topics the Kafka bus creates)",
  BUS_LINGER_MS: "how long a busy in-process consumer waits to fill a batch (an idle one takes a lone record at once)",
  KAFKA_SESSION_TIMEOUT_MS: "consumer group session timeout",
  KAFKA_HEARTBEAT_INTERVAL_MS: "consumer group heartbeat interval",
  KAFKA_REBALANCE_TIMEOUT_MS: "consumer group rebalance timeout (unset: twice the session timeout)",
  KAFKA_FETCH_MAX_WAIT_MS: "longest a Kafka fetch waits for records",
  KAFKA_MOCK_BROKER_QUIRKS:
    "true: for tests against librdkafka's mock broker only (kafkajs works around it: a group leader waits 500 ms before syncing, a refused follower rejoins, fetches are topped up); refused against any other broker",
  BUS_WRITE_PREVIOUS_VERSIONS:
    "message types written at their previous version until every reader is upgraded, comma-separated, or all (docs/bus.md, Upgrading)",
  DATABASE_URL: "PostgreSQL URL, postgres://... (unset: embedded PGlite in DATA_DIR)",
  DATABASE_POOL_SIZE: "PostgreSQL connections per process",
  DATA_DIR: "PGlite's files (:memory: for a throwaway database)",
  PGLITE_UNSAFE_NO_FSYNC:
    "true: PGlite without fsync (faster; a power cut can lose acknowledged orders or damage DATA_DIR): for benchmarks only",
  CONFIG_DIR: "where <module>.yaml files are read from (the binary, without ./config: its built-in copy)",
  HOST: "address the HTTP services listen on",
  BODY_LIMIT_BYTES: "largest request body read",
  ADMIN_TOKEN: "bearer token for deposits, receipts and /admin/* (unset: random per start, logged once)",
  BUS_SIGNING_KEY: `HMAC key signing bus records, ${MIN_SIGNING_KEY_LENGTH}+ characters, the same in every service (required with BUS=kafka)`,
  BUS_SIGNING_KEY_PREVIOUS: "previous signing key, still accepted when checking (needs BUS_SIGNING_KEY)",
  BUS_SIGNING_KEY_FILE: "file holding BUS_SIGNING_KEY (a Docker secret), instead of the variable",
  ADMIN_TOKEN_FILE: "file holding ADMIN_TOKEN (a Docker secret), instead of the variable",
  BUS_INSECURE_UNSIGNED_RECORDS: "true: run BUS=kafka without a signing key, so anyone who can write to the topics can forge records",
  LOG_LEVEL: `log level: ${LOG_LEVELS.join(", ")}`,
  LOG_FORMAT: `log format: ${LOG_FORMATS.join(", ")} (unset: pretty on a terminal, JSON otherwise)`,
  IGNORE_VARS: "<MODULE>_* variables that are not the shop's, comma-separated (not checked, not applied)",
  OTEL_EXPORTER_OTLP_ENDPOINT: "OTLP/HTTP collector base URL, e.g. http://localhost:4318 (spans go to <URL>/v1/traces); unset: no tracing",
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "full OTLP/HTTP URL for spans, instead of OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces",
  OTEL_EXPORTER_OTLP_PROTOCOL: "OTLP transport: http/json (the only one supported)",
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "OTLP transport for spans: http/json (the only one supported)",
  OTEL_TRACES_EXPORTER: "otlp (to the endpoint above), console (spans printed to stdout, for a look), or none",
  OTEL_SERVICE_NAME: "service name on the spans (unset: the module's name, or shop for several modules in one process)",
  OTEL_TRACES_SAMPLER: `which traces are kept: ${TRACE_SAMPLERS.join(", ")}`,
  OTEL_TRACES_SAMPLER_ARG: "ratio of traces kept by the traceidratio samplers, 0 to 1 (unset: 1)",
  OTEL_SDK_DISABLED: "true: no tracing, whatever else is set",
};

/** The module YAML files the binary carries (the project's config/ at build time). */
export const BUILT_IN_CONFIG_DIR = assetPath("config");

/** Parses process settings or throws a ConfigError naming the first bad setting and its value. */
export function loadSettings(given: Env): Settings {
  const env = withSecretFile(withSecretFile(given, "BUS_SIGNING_KEY"), "ADMIN_TOKEN");
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
  if (parsed.data.KAFKA_MOCK_BROKER_QUIRKS && parsed.data.BUS !== "kafka") {
    const name = "KAFKA_MOCK_BROKER_QUIRKS";
    throw new ConfigError(
      origin(env, name),
      "only with BUS=kafka, against librdkafka's mock broker (for tests)",
      showValue(name, env[name]),
    );
  }
  pinnedWriters(parsed.data.BUS_WRITE_PREVIOUS_VERSIONS);
  // The binary runs from any directory: without ./config (and CONFIG_DIR unset) it uses the copy it carries.
  if (IN_BINARY && !env.CONFIG_DIR && !existsSync(parsed.data.CONFIG_DIR)) parsed.data.CONFIG_DIR = BUILT_IN_CONFIG_DIR;
  return parsed.data;
}

/**
 * The message types BUS_WRITE_PREVIOUS_VERSIONS pins to their previous version: the names given,
 * `all` for every type that has one (none is no error: nothing to pin). An unknown type, or one
 * without a previous version in `previous`, is a ConfigError naming it.
 */
export function pinnedWriters(names: readonly string[], previous: PreviousVersions = PREVIOUS_VERSIONS): ReadonlySet<MessageType> {
  const known = Object.keys(MESSAGES) as MessageType[];
  const pinned = new Set<MessageType>();
  for (const name of names) {
    if (name === "all") {
      for (const type of known) if (previous[type]) pinned.add(type);
      continue;
    }
    const type = known.find((t) => t === name);
    if (!type)
      throw new ConfigError(
        "BUS_WRITE_PREVIOUS_VERSIONS",
        `unknown message type ${JSON.stringify(name)} (known: ${known.join(", ")}, or all)`,
        names.join(","),
      );
    if (!previous[type]) {
      throw new ConfigError(
        "BUS_WRITE_PREVIOUS_VERSIONS",
        `${type} is written at version ${MESSAGES[type].version} and has no previous version to write (src/contracts lists none)`,
        names.join(","),
      );
    }
    pinned.add(type);
  }
  return pinned;
}

/**
 * `env` with `name` (a secret) read from `<name>_FILE`, when that is set; a value that fails
 * validation is then reported as the file's. Both set, or an unreadable file: a ConfigError.
 */
function withSecretFile(env: Env, name: "BUS_SIGNING_KEY" | "ADMIN_TOKEN"): Env {
  const setting = `${name}_FILE`;
  const file = env[setting];
  if (!file) return env;
  if (env[name]) throw new ConfigError(setting, `${name} is set too: give it one way`, showValue(setting, file));
  let value: string;
  try {
    value = readFileSync(file, "utf8").trim();
  } catch (err) {
    throw new ConfigError(
      setting,
      `cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      showValue(setting, file),
    );
  }
  return withValueFrom(env, name, value, `${setting} (${file})`);
}

/**
 * Records on a shared bus are signed unless the operator says otherwise by name: with Kafka, other
 * processes and tools can write to the topics, and an unsigned record in a service's name would be
 * acted on. The in-process bus has no other writer and needs no key.
 */
function checkSigning(settings: Settings, env: Env): void {
  if (settings.BUS_INSECURE_UNSIGNED_RECORDS && settings.BUS_SIGNING_KEY) {
    throw new ConfigError(
      "BUS_INSECURE_UNSIGNED_RECORDS",
      "a signing key is set too: remove one of the two (records are signed when there is a key)",
      "true",
    );
  }
  if (settings.BUS !== "kafka" || settings.BUS_SIGNING_KEY || settings.BUS_INSECURE_UNSIGNED_RECORDS) return;
  throw new ConfigError(
    "BUS_SIGNING_KEY",
    `required with ${origin(env, "BUS") === "BUS" ? "BUS=kafka" : "--bus kafka"}: anyone who can write to the topics could otherwise make the services ` +
      `refund, release or complete orders. Give every service the same key of ${MIN_SIGNING_KEY_LENGTH}+ characters, e.g. ` +
      "BUS_SIGNING_KEY=$(openssl rand -base64 48), or BUS_SIGNING_KEY_FILE=<a file holding it>; " +
      'to run with forgeable records anyway, set BUS_INSECURE_UNSIGNED_RECORDS=true (docs/security.md, "Signed records")',
  );
}
