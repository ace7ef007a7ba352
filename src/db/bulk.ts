/**
 * Set-based SQL whose text is the same whatever the number of rows: values travel as one array
 * parameter per column (`unnest`), so a batch of 1 and a batch of 200 run the same prepared
 * statement (drizzle's `values([...])` and `inArray` write a new statement for every count).
 */
import { Param, SQL, StringChunk, sql } from "drizzle-orm";
import { type AnyPgColumn, getTableConfig, type PgColumn, PgDialect, type PgTable } from "drizzle-orm/pg-core";
import { InvariantError } from "../errors";
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
export function insertMany<T extends PgTable>(
  table: T,
  keys: readonly (keyof Insertable<T> & string)[],
  rows: readonly Insertable<T>[],
  tail?: SQL,
): SQL {
  const shape = shapeOf("insert", table, keys, () => {
    const { columns, value } = unnestColumns(table, keys);
    return {
      columns,
      head: sql`insert into ${table} (${sql.join(
        columns.map((c) => sql.identifier(c.name)),
        sql`, `,
      )}) select ${sql.join(
        columns.map((_, i) => value(i)),
        sql`, `,
      )}`,
      foot: sql``,
    };
  });
  return shape.bind(rows, tail ? sql` ${tail}` : undefined);
}

/**
 * `update <table> set <col> = v.<col>, ... [, <extra>] from unnest(...) as v(...) where <table>.<key> = v.<key>`:
 * one statement for many rows, each row's new values given. `keys[0]` is the row's identity.
 */
export function updateMany<T extends PgTable>(
  table: T,
  keys: readonly (keyof T["$inferSelect"] & string)[],
  rows: readonly T["$inferSelect"][] | readonly Partial<T["$inferSelect"]>[],
  extra?: SQL,
): SQL {
  const shape = shapeOf("update", table, keys, () => {
    const { columns, value } = unnestColumns(table, keys);
    const sets = columns.slice(1).map((c, i) => sql`${sql.identifier(c.name)} = ${value(i + 1)}`);
    const id = columns[0] as PgColumn;
    return {
      columns,
      head: sql`update ${table} set ${sql.join(sets, sql`, `)}`,
      foot: sql` where ${table}.${sql.identifier(id.name)} = ${value(0)}`,
    };
  });
  return shape.bind(rows, undefined, extra ? sql`, ${extra}` : undefined);
}

/**
 * A statement of insertMany or updateMany for one table and list of keys: its text rendered once
 * (drizzle walks a template's tree on every render), and the rows' values bound to it per call
 * as one array parameter per column.
 */
interface Shape {
  /** `head [+ beforeFrom] from unnest($1::t1[], ...) as v(c0, ...) foot [+ tail]`. */
  bind(rows: readonly object[], tail?: SQL, beforeFrom?: SQL): SQL;
}

const dialect = new PgDialect();
const shapes = new WeakMap<PgTable, Map<string, Shape>>();

function shapeOf(kind: string, table: PgTable, keys: readonly string[], build: () => { columns: PgColumn[]; head: SQL; foot: SQL }): Shape {
  let byKeys = shapes.get(table);
  if (!byKeys) shapes.set(table, (byKeys = new Map()));
  const name = `${kind}:${keys.join(",")}`;
  let shape = byKeys.get(name);
  if (shape) return shape;
  const { columns, head, foot } = build();
  const text = (q: SQL) => {
    const rendered = dialect.sqlToQuery(q);
    if (rendered.params.length > 0) throw new InvariantError("a statement shape has no parameters of its own");
    return rendered.sql;
  };
  const headText = text(head);
  const fromText = " from unnest(";
  // Between the arrays: `::t1[], ` ... and after the last: `::tn[]) as v(c0, ..., cn) <foot>`.
  const casts = columns.map((c, i) =>
    i < columns.length - 1
      ? `::${arrayOf(c).array}, `
      : `::${arrayOf(c).array}) as v(${columns.map((_, k) => `c${k}`).join(", ")})${text(foot)}`,
  );
  shape = {
    bind(rows, tail, beforeFrom) {
      const chunks: (StringChunk | Param | SQL)[] = [new StringChunk(headText)];
      if (beforeFrom) chunks.push(beforeFrom);
      chunks.push(new StringChunk(fromText));
      columns.forEach((c, i) => {
        const key = keys[i] as string;
        chunks.push(new Param(rows.map((r) => columnValue(c, (r as Record<string, unknown>)[key]))), new StringChunk(casts[i] as string));
      });
      if (tail) chunks.push(tail);
      return new SQL(chunks);
    },
  };
  byKeys.set(name, shape);
  return shape;
}

/** The columns of `keys`, and `value(i)`: the i-th value of a row as its column's type (`v.ci`, cast back where needed). */
function unnestColumns(table: PgTable, keys: readonly string[]) {
  const columns = keys.map((k) => columnOf(table, k));
  const value = (i: number) => {
    const { cast } = arrayOf(columns[i] as PgColumn);
    return sql.raw(cast ? `v.c${i}::${cast}` : `v.c${i}`);
  };
  return { columns, value };
}

/** A row's value as it travels in its column's array: null, or the driver's value (see driverValue). */
function columnValue(column: PgColumn, v: unknown): unknown {
  return v === undefined || v === null ? null : driverValue(column, v);
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
  if (!column || !columns.has(column)) throw new InvariantError(`${getTableConfig(table).name} has no column ${key}`);
  return column;
}

/**
 * Several writes as one statement: each but the last a data-modifying CTE (`with w0 as (...)`).
 * PostgreSQL runs every one of them, on one snapshot: they must not touch the same rows.
 */
export function allInOne(writes: readonly SQL[]): SQL {
  const last = writes.at(-1);
  if (!last) throw new InvariantError("allInOne: no statement");
  if (writes.length === 1) return last;
  const ctes = writes.slice(0, -1).map((w, i) => sql`${sql.raw(`w${i}`)} as (${w})`);
  return sql`with ${sql.join(ctes, sql`, `)} ${last}`;
}

/** Runs `writes` as one statement (allInOne); nothing when there are none. */
export async function runAll(tx: Executor, writes: readonly SQL[]): Promise<void> {
  if (writes.length > 0) await tx.execute(allInOne(writes));
}
