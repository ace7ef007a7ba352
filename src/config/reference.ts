/**
 * Every setting with its variable, flag, default and meaning, generated from the schemas so it
 * cannot drift: `--help` prints it, `bun run scripts/config-reference.ts` writes it into docs/configuration.md.
 */
import type { z } from "zod";
import { flagOf } from "./flags";
import { MODULE_BASE_HELP } from "./module-config";
import { isMapping, unwrap } from "./schema-shape";
import { type ModuleName, SETTING_HELP, SettingsSchema } from "./settings";

/** A module as `--help` describes it. */
export interface ModuleHelp {
  name: ModuleName;
  configSchema: z.ZodType;
}

/** One setting as `--help` and docs/configuration.md list it. */
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
interface ReferenceSection {
  title: string;
  /** The module whose YAML this is; absent for the process settings. */
  module?: ModuleName;
  rows: ReferenceRow[];
}

/**
 * What each key of a module's YAML means, by its path (`port`, `topics.success`, `products`): the
 * shared keys' lines, and the descriptions the module gives its own keys in its schema.
 */
export function moduleKeyHelp(m: ModuleHelp): Record<string, string> {
  const own: Record<string, string> = {};
  for (const [key, field] of Object.entries(unwrap(m.configSchema).shape ?? {})) {
    if (field.description) own[key] = field.description;
    for (const [sub, inner] of Object.entries(unwrap(field).shape ?? {})) if (inner.description) own[`${key}.${sub}`] = inner.description;
  }
  return { ...MODULE_BASE_HELP, ...own };
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

/** Every setting: the process settings (variables and flags), then each module's YAML keys, nested keys and list items included. */
export function configReference(modules: readonly ModuleHelp[]): ReferenceSection[] {
  const process: ReferenceSection = {
    title: "Process settings (environment, .env or flag)",
    rows: (Object.keys(SETTING_HELP) as (keyof typeof SETTING_HELP)[]).map((name) => ({
      key: name,
      variable: name,
      flag: flagOf(name),
      default: shownDefault(SettingsSchema.shape[name]),
      text: SETTING_HELP[name],
    })),
  };
  return [process, ...modules.map(moduleSection)];
}

/** One module's YAML keys, each with the variable overriding it. */
function moduleSection(m: ModuleHelp): ReferenceSection {
  const help = moduleKeyHelp(m);
  const rows = Object.entries(unwrap(m.configSchema).shape ?? {}).flatMap(([key, field]) => keyRows(m.name, key, field, help));
  return { title: `${m.name}: <CONFIG_DIR>/${m.name}.yaml`, module: m.name, rows };
}

/** The rows of one top-level key: a mapping's keys one by one, a list in one row naming its items' keys, a scalar with its `<MODULE>_<KEY>`. */
function keyRows(module: ModuleName, key: string, field: z.ZodType, help: Record<string, string>): ReferenceRow[] {
  const def = unwrap(field);
  if (def.type === "object") {
    // A mapping (topics): each key on its own row; topic names have their TOPIC_* variables.
    const defaults = field.safeParse(undefined);
    return Object.entries(def.shape ?? {}).map(([sub, inner]) => {
      const variable = key === "topics" ? `TOPIC_${sub.toUpperCase()}` : undefined;
      const value = defaults.success && isMapping(defaults.data) ? defaults.data[sub] : undefined;
      return {
        key: `${key}.${sub}`,
        variable,
        default: value === undefined ? shownDefault(inner) : String(value),
        text: help[`${key}.${sub}`] ?? "",
      };
    });
  }
  if (def.type === "array") {
    const items = def.element ? Object.keys(unwrap(def.element).shape ?? {}) : [];
    return [{ key, default: shownDefault(field), text: `${help[key] ?? ""}; a list of { ${items.join(", ")} }, in the file only` }];
  }
  const variable = `${module.toUpperCase()}_${key.toUpperCase()}`;
  return [{ key, variable, flag: flagOf(variable), default: shownDefault(field), text: help[key] ?? "" }];
}
