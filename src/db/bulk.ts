/**
 * Set-based SQL whose text is the same whatever the number of rows: values travel as one array
 * parameter per column (`unnest`), so a batch of 1 and a batch of 200 run the same prepared
 * statement (drizzle's `values([...])` and `inArray` write a new statement for every count).
 */
import { type SQL, sql } from "drizzle-orm";
import { type AnyPgColumn, getTableConfig, type PgColumn, type PgTable } from "drizzle-orm/pg-core";
import type { Executor } from "./database";

/** `column = any($1::type[])`: the values as one array parameter. */
export function anyOf(column: AnyPgColumn | SQL, values: readonly (string | number)[], type: "uuid" | "integer" | "bigint" | "text"): SQL {
  return sql`${column} = any(${sql.param(values)}::${sql.raw(type)}[])`;
}

/**
 * The array type a column's values travel in, and the cast back. JSON travels as text; so do
 * booleans: postgres.js types an array parameter by its first element, and an array of booleans
 * would go out typed `boolean` (strings and numbers go out untyped, for the server to infer).
 */
function arrayOf(column: PgColumn): { array: string; cast: string | null } {
  const type = column.getSQLType();
  if (type === "jsonb" || type === "json" || type === "boolean") return { array: "text[]", cast: type };
  if (type === "bigserial") return { array: "bigint[]", cast: null };
  if (type === "serial") return { array: "integer[]", cast: null };
  return { array: `${type}[]`, cast: null };
}

type Insertable<T extends PgTable> = T["$inferInsert"];

/**
 * `insert into <table> (<the rows' keys>) select ... from unnest($1, $2, ...)`, plus `tail` (an
 * `on conflict ...` or `returning ...` clause). Every row names the same keys; with no rows it
 * inserts nothing (the statement is the same).
 */
export function insertMany<T extends PgTable>(table: T, keys: readonly (keyof Insertable<T> & string)[], rows: readonly Insertable<T>[], tail?: SQL): SQL {
  const { columns, unnest, value } = unnestRows(table, keys, rows);
  return sql`insert into ${table} (${sql.join(
    columns.map((c) => sql.identifier(c.name)),
    sql`, `,
  )}) select ${sql.join(columns.map((_, i) => value(i)), sql`, `)} from ${unnest}${tail ? sql` ${tail}` : sql``}`;
}

/**
 * The rows' values of `keys` as `unnest($1::t1[], $2::t2[], ...) as v(c0, c1, ...)`, the columns,
 * and `value(i)`: the i-th value of a row as its column's type (`v.ci`, cast back where needed).
 */
function unnestRows(table: PgTable, keys: readonly string[], rows: readonly object[]) {
  const columns = keys.map((k) => columnOf(table, k));
  const arrays = columns.map((c, i) => {
    const key = keys[i] as string;
    const values = rows.map((r) => {
      const v = (r as Record<string, unknown>)[key];
      return v === undefined || v === null ? null : driverValue(c, v);
    });
    return sql`${sql.param(values)}::${sql.raw(arrayOf(c).array)}`;
  });
  const names = columns.map((_, i) => sql.raw(`c${i}`));
  const value = (i: number) => {
    const { cast } = arrayOf(columns[i] as PgColumn);
    return sql.raw(cast ? `v.c${i}::${cast}` : `v.c${i}`);
  };
  return { columns, unnest: sql`unnest(${sql.join(arrays, sql`, `)}) as v(${sql.join(names, sql`, `)})`, value };
}

/** A value as it travels in its column's array (see arrayOf). */
function driverValue(column: PgColumn, value: unknown): unknown {
  const mapped = column.mapToDriverValue(value);
  return typeof mapped === "boolean" ? String(mapped) : mapped;
}

/** Each table's columns (getTableConfig builds the whole config, indexes included, on every call). */
const columnsOf = new WeakMap<PgTable, Set<PgColumn>>();

/** The column of `table` whose TypeScript key is `key`. */
function columnOf(table: PgTable, key: string): PgColumn {
  let columns = columnsOf.get(table);
  if (!columns) columnsOf.set(table, (columns = new Set(getTableConfig(table).columns)));
  const column = (table as unknown as Record<string, PgColumn>)[key];
  if (!column || !columns.has(column)) throw new Error(`${getTableConfig(table).name} has no column ${key}`);
  return column;
}

/**
 * `update <table> set <col> = v.<col>, ... [, <extra>] from unnest(...) as v(...) where <table>.<key> = v.<key>`:
 * one statement for many rows, each row's new values given. `keys[0]` is the row's identity.
 */
export function updateMany<T extends PgTable>(table: T, keys: readonly (keyof T["$inferSelect"] & string)[], rows: readonly T["$inferSelect"][] | readonly Partial<T["$inferSelect"]>[], extra?: SQL): SQL {
  const { columns, unnest, value } = unnestRows(table, keys, rows);
  const sets = columns.slice(1).map((c, i) => sql`${sql.identifier(c.name)} = ${value(i + 1)}`);
  if (extra) sets.push(extra);
  const id = columns[0] as PgColumn;
  return sql`update ${table} set ${sql.join(sets, sql`, `)} from ${unnest} where ${table}.${sql.identifier(id.name)} = ${value(0)}`;
}

/**
 * Several writes as one statement: each but the last a data-modifying CTE (`with w0 as (...)`).
 * PostgreSQL runs every one of them, on one snapshot: they must not touch the same rows.
 */
export function allInOne(writes: readonly SQL[]): SQL {
  const last = writes.at(-1);
  if (!last) throw new Error("allInOne: no statement");
  if (writes.length === 1) return last;
  const ctes = writes.slice(0, -1).map((w, i) => sql`${sql.raw(`w${i}`)} as (${w})`);
  return sql`with ${sql.join(ctes, sql`, `)} ${last}`;
}

/** Runs `writes` as one statement (allInOne); nothing when there are none. */
export async function runAll(tx: Executor, writes: readonly SQL[]): Promise<void> {
  if (writes.length > 0) await tx.execute(allInOne(writes));
}
