/** SQL helpers that keep a statement's text the same from call to call, so its prepared plan is reused. */
import { type SQL, sql } from "drizzle-orm";
import type { AnyPgColumn } from "drizzle-orm/pg-core";

/** Element types `anyOf` takes (a fixed list: the type is written into the SQL text). */
export type ArrayElement = "uuid" | "integer" | "bigint" | "text";

/**
 * `column = any($1::type[])`: the values travel as one array parameter, so the text is the same
 * whatever their number (drizzle's `inArray` writes `in ($1, ..., $n)`, a new statement for every n).
 */
export function anyOf(column: AnyPgColumn | SQL, values: readonly (string | number)[], type: ArrayElement): SQL {
  return sql`${column} = any(${sql.param(values)}::${sql.raw(type)}[])`;
}
