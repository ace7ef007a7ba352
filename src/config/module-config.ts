/** A module's YAML file: the keys every module shares, and loading the file, with its overrides, into the module's schema. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { TopicsSchema } from "../contracts/topics";
import { didYouMean } from "./did-you-mean";
import { ConfigError, readable, showValue } from "./errors";
import { type Env, origin } from "./flags";
import { withOverrides } from "./module-overrides";
import { isMapping } from "./schema-shape";
import type { ModuleName } from "./settings";

/**
 * Settings every module's YAML shares. Every mapping of a module's schema is a strictObject (its
 * list items too, and TopicsSchema), so that zod reports a key it does not know.
 */
export const ModuleBaseSchema = z.strictObject({
  port: z.coerce.number().int().min(0).max(65_535),
  consumer_group: z.string().min(1),
  topics: TopicsSchema,
  // A safety net only: every commit that writes to the outbox wakes the relay at once.
  outbox_poll_ms: z.coerce.number().int().min(10).max(600_000).default(10_000),
  // /health/ready fails (503) while more outbox rows than this wait to be published: a
  // service whose messages are not leaving should get no new work (docs/operations.md, "Starting, readiness and health").
  ready_max_outbox_backlog: z.coerce.number().int().min(0).default(10_000),
  // Retention (docs/operations.md, "Retention"): how long each bookkeeping table keeps a row (fractions
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

type SharedKey = Exclude<keyof typeof ModuleBaseSchema.shape, "topics"> | `topics.${keyof z.infer<typeof TopicsSchema>}`;

/** What each shared key means (`--help`, docs/configuration.md); a module describes its own keys (`.describe()`) in its config.ts. */
export const MODULE_BASE_HELP: Record<SharedKey, string> = {
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
};

/**
 * Reads `config/<module>.yaml`, applies environment overrides and validates it.
 * A key the module's schema does not know, in the file (at any depth) or as `<MODULE>_<KEY>`, is an
 * error. `<MODULE>_<KEY>` overrides a top-level scalar key (REGISTRY_PORT, WALLET_CONSUMER_GROUP);
 * `TOPIC_NEW_ORDERS`, `TOPIC_REJECTED_ORDERS`, `TOPIC_SUCCESS` override topic names. Exempt from
 * the check (and not applied): empty values, `<MODULE>_URL`, and the names listed in IGNORE_VARS.
 * Errors name where the bad value came from (variable, flag, or file and key) and the value.
 */
export function loadModuleConfig<S extends z.ZodType>(name: ModuleName, schema: S, configDir: string, env: Env): z.infer<S> {
  const file = join(configDir, `${name}.yaml`);
  const raw = readMapping(file);
  const unknown = firstUnknownKey(schema, raw);
  if (unknown) throw new ConfigError(`${file}: ${unknown.path.join(".")}`, unknown.message);
  const { doc, overrides } = withOverrides(name, schema, file, raw, env);
  const parsed = schema.safeParse(doc, { reportInput: true });
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const path = (issue?.path ?? []).map(String);
  const variable = overrides.get(path.join(".")) ?? overrides.get(path[0] ?? "");
  if (variable !== undefined) throw new ConfigError(origin(env, variable), readable(issue), showValue(variable, env[variable]));
  let value: unknown = doc;
  for (const p of path) value = isMapping(value) || Array.isArray(value) ? (value as Record<string, unknown>)[p] : undefined;
  throw new ConfigError(`${file}: ${path.join(".") || "(root)"}`, readable(issue), showValue("", value));
}

/** The YAML file as a mapping (an empty file is an empty one); unreadable, unparsable or not a mapping: a ConfigError naming the file. */
function readMapping(file: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file, "utf8")) ?? {};
  } catch (err) {
    throw new ConfigError(file, `cannot read: ${(err as Error).message}`);
  }
  if (!isMapping(raw)) throw new ConfigError(file, "expected a mapping at the top level");
  return raw;
}

/**
 * The first key of `doc`, as a reader meets them, that `schema` does not know: zod's strict
 * mappings report them (`unrecognized_keys`, one issue per mapping, its keys in file order).
 */
function firstUnknownKey(schema: z.ZodType, doc: Record<string, unknown>): { path: string[]; message: string } | undefined {
  const issues = schema.safeParse(doc, { error: unknownKeyMessage }).error?.issues ?? [];
  const unknown = issues.flatMap((i) =>
    i.code === "unrecognized_keys" ? [{ path: [...i.path.map(String), String(i.keys[0])], message: i.message }] : [],
  );
  const order = keyPaths(doc);
  return unknown.sort((a, b) => order.indexOf(a.path.join(".")) - order.indexOf(b.path.join(".")))[0];
}

/** The message of zod's `unrecognized_keys`: the mapping's first unknown key, a guess at the typo, the keys it knows. */
function unknownKeyMessage(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.code !== "unrecognized_keys" || !(issue.inst instanceof z.ZodObject)) return undefined;
  const known = Object.keys(issue.inst.shape);
  return `unknown key${didYouMean(String(issue.keys[0]), known)}; known: ${known.join(", ")}`;
}

/** Every key path of a document (`topics.success`, `products.0.sku`), in the order a reader meets them. */
function keyPaths(node: unknown, prefix = ""): string[] {
  if (!isMapping(node) && !Array.isArray(node)) return [];
  return Object.entries(node).flatMap(([key, value]) => [`${prefix}${key}`, ...keyPaths(value, `${prefix}${key}.`)]);
}
