/** What a zod schema expects under its wrappers (default, optional, pipe, ...), for the reference and the overrides. */
import type { z } from "zod";

/** The parts of a zod schema's definition the reference, the overrides and the tests' key walker look at. */
interface Def {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  /** What unknown keys must match: `never` in a strictObject. */
  catchall?: z.ZodType;
}

/** `schema` without its wrappers (default, optional, pipe, ...): the shape a value must have. */
export function unwrap(schema: z.ZodType): Def {
  let def = schema._zod.def as unknown as Def;
  for (;;) {
    const inner = def.innerType ?? (def.type === "pipe" ? def.in : undefined);
    if (!inner) return def;
    def = inner._zod.def as unknown as Def;
  }
}

/** Whether `v` is a mapping (a plain object, not a list). */
export const isMapping = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
