import { InvariantError } from "../errors";

/** The rows of a raw `execute()`, whatever the driver (postgres.js gives an array, PGlite an object with `rows`). */
export function rowsOf(result: unknown): Record<string, unknown>[] {
  if (Array.isArray(result)) return result as Record<string, unknown>[];
  const rows = (result as { rows?: unknown } | null)?.rows;
  if (Array.isArray(rows)) return rows as Record<string, unknown>[];
  throw new InvariantError("unexpected query result: no rows");
}
