/** Every key a zod config schema accepts, walked from the schema itself (to check generated references against), and its mappings that are not strict. */
import type { z } from "zod";
import { unwrap } from "../../src/config/schema-shape";

/** One key: its path (`port`, `topics.success`, `products[].id`) and its default, if it has one. */
export interface SchemaKey {
  path: string;
  default?: unknown;
}

/** The keys of an object schema, nested mappings and list items included. */
export function schemaKeys(schema: z.ZodType, prefix = ""): SchemaKey[] {
  const keys: SchemaKey[] = [];
  for (const [key, field] of Object.entries(unwrap(schema).shape ?? {})) {
    const path = `${prefix}${key}`;
    const def = unwrap(field);
    const parsed = field.safeParse(undefined);
    if (def.type === "object") {
      const defaults = parsed.success ? (parsed.data as Record<string, unknown>) : {};
      for (const sub of schemaKeys(field, `${path}.`))
        keys.push({ ...sub, default: sub.default ?? defaults[sub.path.slice(path.length + 1)] });
    } else if (def.type === "array") {
      keys.push({ path, default: parsed.success ? parsed.data : undefined });
      if (def.element) keys.push(...schemaKeys(def.element, `${path}[].`).map((k) => ({ path: k.path })));
    } else {
      keys.push({ path, default: parsed.success ? parsed.data : undefined });
    }
  }
  return keys;
}

/** The mappings of a schema (itself, nested ones, list items) that let an unknown key through: not strictObject. */
export function lenientMappings(schema: z.ZodType, path = ""): string[] {
  const def = unwrap(schema);
  if (def.type === "array") return def.element ? lenientMappings(def.element, `${path}[]`) : [];
  if (def.type !== "object") return [];
  const own = def.catchall?._zod.def.type === "never" ? [] : [path || "(root)"];
  return [...own, ...Object.entries(def.shape ?? {}).flatMap(([key, field]) => lenientMappings(field, path ? `${path}.${key}` : key))];
}
