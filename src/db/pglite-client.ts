/** PGlite as drizzle drives it, without drizzle's per-query copy of PGlite's parser table. */
import { PGlite, type PGliteOptions, type QueryOptions, type Results, type Transaction, types } from "@electric-sql/pglite";

/**
 * The types drizzle reads as text (dates, intervals and their arrays, numeric[]): the parsers
 * drizzle-orm's PGlite driver hands to PGlite with every query.
 */
const TEXT_TYPES = [types.TIMESTAMP, types.TIMESTAMPTZ, types.INTERVAL, types.DATE, 1231, 1115, 1185, 1187, 1182];

/**
 * PGlite for drizzle. drizzle-orm's PGlite driver (0.45: `PglitePreparedQuery`'s `queryConfig` and
 * `rawQueryConfig`) passes the parsers above with every query, and PGlite merges a query's parsers
 * into a fresh copy of its whole parser table (`parseResults`): about a sixth of a query's CPU.
 * This client has them in its own table from the start, so it leaves out the `parsers` a query
 * brings, outside a transaction and inside one (a transaction's handle is wrapped the same way).
 * drizzle has no setting to leave them out; PGlite's `create` cannot make a subclass, so
 * `openPgliteClient` constructs it and waits for it.
 */
class PgliteClient extends PGlite {
  constructor(options: PGliteOptions) {
    super({ ...options, parsers: { ...Object.fromEntries(TEXT_TYPES.map((t) => [t, (v: string) => v])), ...options.parsers } });
  }

  override query<T>(query: string, params?: unknown[], options?: QueryOptions): Promise<Results<T>> {
    return super.query<T>(query, params, withoutParsers(options));
  }

  override transaction<T>(callback: (tx: Transaction) => Promise<T>): Promise<T> {
    return super.transaction((tx) => callback(transactionWithoutParsers(tx)));
  }
}

const withoutParsers = (options: QueryOptions | undefined): QueryOptions | undefined => {
  if (!options?.parsers) return options;
  const { parsers: _, ...rest } = options;
  return rest;
};

/** PGlite's transaction handle, its `query` leaving out a query's parsers like PgliteClient's. */
const transactionWithoutParsers = (tx: Transaction): Transaction => ({
  query: (query, params, options) => tx.query(query, params, withoutParsers(options)),
  sql: (strings, ...params) => tx.sql(strings, ...params),
  exec: (query, options) => tx.exec(query, options),
  rollback: () => tx.rollback(),
  listen: (channel, callback) => tx.listen(channel, callback),
  get closed() {
    return tx.closed;
  },
});

/** Opens PGlite with `options` (as `PGlite.create`), as a PgliteClient. */
export async function openPgliteClient(options: PGliteOptions): Promise<PGlite> {
  const client = new PgliteClient(options);
  await client.waitReady;
  return client;
}
