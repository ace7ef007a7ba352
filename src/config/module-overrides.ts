/** Environment overrides of a module's YAML: `<MODULE>_<KEY>` for its top-level scalar keys, `TOPIC_*` for the topic names. */
import type { z } from "zod";
import { TopicsSchema } from "../contracts/topics";
import { didYouMean } from "./did-you-mean";
import { ConfigError, showValue } from "./errors";
import { type Env, origin } from "./flags";
import { isMapping, unwrap } from "./schema-shape";
import { csv, type ModuleName } from "./settings";

/** Variables with a module's prefix that are never its overrides: the audit script's `<MODULE>_URL`. */
const NOT_OVERRIDES = new Set(["URL"]);

/** The topics, each overridden for every module by `TOPIC_<NAME>`. */
const TOPIC_KEYS = Object.keys(TopicsSchema.unwrap().shape);

/** The document to validate, and which variable set each overridden key, by its path ("port", "topics.success"). */
interface Overridden {
  doc: Record<string, unknown>;
  overrides: Map<string, string>;
}

/** `raw` (the module's YAML, read from `file`) with the environment's overrides applied. */
export function withOverrides(name: ModuleName, schema: z.ZodType, file: string, raw: Record<string, unknown>, env: Env): Overridden {
  const doc: Record<string, unknown> = { ...raw };
  const overrides = new Map<string, string>();
  for (const [field, variable] of keyVariables(name, schema, file, env)) {
    doc[field] = env[variable];
    overrides.set(field, variable);
  }
  const topics = { ...(isMapping(doc.topics) ? doc.topics : {}) };
  for (const key of TOPIC_KEYS) {
    const variable = `TOPIC_${key.toUpperCase()}`;
    if (!env[variable]) continue;
    topics[key] = env[variable];
    overrides.set(`topics.${key}`, variable);
  }
  doc.topics = topics;
  return { doc, overrides };
}

/**
 * The module's `<MODULE>_<KEY>` variables, as [key, variable]. One that names no key, names it in
 * lower case, or names a list or mapping is a ConfigError; exempt (and not applied) are empty
 * values, `<MODULE>_URL` and the names listed in IGNORE_VARS.
 */
function keyVariables(name: ModuleName, schema: z.ZodType, file: string, env: Env): [string, string][] {
  const shape = unwrap(schema).shape ?? {};
  const prefix = `${name.toUpperCase()}_`;
  const ignored = new Set(csv(env.IGNORE_VARS ?? ""));
  const found: [string, string][] = [];
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
      const suggestion = didYouMean(
        rest,
        Object.keys(shape).map((k) => k.toUpperCase()),
        (k) => prefix + k,
      );
      throw new ConfigError(
        from,
        `${name} has no setting "${field}"${suggestion}; if this variable is not meant for the shop, add it to IGNORE_VARS (or unset it) (see --help)`,
        showValue(key, value),
      );
    }
    const kind = unwrap(fieldSchema).type;
    if (kind === "object" || kind === "array") {
      throw new ConfigError(from, `${field} is a ${kind === "array" ? "list" : "mapping"}; set it in ${file}`, showValue(key, value));
    }
    found.push([field, key]);
  }
  return found;
}
