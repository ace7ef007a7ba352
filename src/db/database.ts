/** One database handle for the process: embedded PGlite, or PostgreSQL through postgres.js. */
import type { PGlite } from "@electric-sql/pglite";
import { sql } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import { causeChain } from "../errors";
import type { Logger } from "../log";
import { countingStatements, countStatement, inSpan, SpanKind, tracingOn } from "../tracing/spans";
import { countPeriodicStatements, work } from "../work-counters";
import { explainConnectionError, isPermanentRefusal } from "./connect-errors";
import { createMutex } from "./mutex";
import { createPglite, type Durability } from "./pglite-durability";
import { CHECKPOINT_EVERY_MS, ensureDataDir, lockDataDir, pgliteOptions } from "./pglite-tuning";

/** What queries run against: the database or an open transaction (a drizzle handle; `Database` is the app's wrapper around one). */
export type Executor = PgDatabase<PgQueryResultHKT>;

/** Round trips to the database so far, for /metrics and the statement-count test. */
interface DatabaseStats {
  /** Statements sent, BEGIN and COMMIT/ROLLBACK included. */
  statements: number;
  transactions: number;
}

/**
 * How busy the connections are, for /metrics. postgres.js has no pool API, so for PostgreSQL
 * these are units of work in flight (transactions, reads, one-statement writes; each holds a
 * connection while it runs) against the configured maximum; PGlite has one connection behind a
 * mutex: in use while a call holds it, the rest wait.
 */
interface PoolUse {
  max: number;
  inUse: number;
  waiting: number;
}

/** The process's database, whatever the driver. */
export interface Database {
  readonly driver: "pglite" | "postgres";
  /**
   * True where transactions run at the same time (PostgreSQL's pool), so that writers must lock
   * what they touch; false on PGlite, whose one connection runs them one after another.
   */
  readonly concurrentTransactions: boolean;
  readonly stats: DatabaseStats;
  /** Connections in use and callers waiting for one, now. */
  pool(): PoolUse;
  /** Runs `fn` in one transaction; retries it on serialization failures and deadlocks. */
  transaction<T>(fn: (tx: Executor) => Promise<T>): Promise<T>;
  /** Runs read-only queries (serialised with writes on PGlite's single connection). */
  read<T>(fn: (db: Executor) => Promise<T>): Promise<T>;
  /** Runs statements outside a transaction, each committing on its own (a one-statement write). */
  autocommit<T>(fn: (db: Executor) => Promise<T>): Promise<T>;
  /** Applies a module's migrations, tracked in drizzle.__migrations_<name>. */
  migrate(name: string, folder: string): Promise<void>;
  /** Throws unless a trivial query succeeds. */
  ping(): Promise<void>;
  close(): Promise<void>;
  /**
   * PostgreSQL only: a connection of its own, outside the pool, for session state such as an
   * advisory lock (it never idles out or retires; its locks go when it closes or breaks). PGlite
   * has none: one process holds its data directory.
   */
  session?(): Promise<DbSession>;
}

/** A dedicated connection (see Database.session). */
export interface DbSession {
  readonly db: Executor;
  /** The same connection, its statements left out of `stats` (housekeeping such as a lock check). */
  readonly quiet: Executor;
  /** Called once if the connection closes or breaks (its session locks are gone then). */
  onClose(hook: () => void): void;
  /** LISTENs on `channel` (on a connection of its own, re-established if it breaks) until close(). */
  listen(channel: string, onNotify: () => void): Promise<void>;
  /** Closes the connection at once. */
  close(): Promise<void>;
}

/** Where to keep data: a PostgreSQL URL, a PGlite directory, or PGlite in memory. */
export type DatabaseTarget =
  | { driver: "postgres"; url: string; poolSize: number }
  | {
      driver: "pglite";
      dataDir: string | null /** PGlite's own behaviour: commits not fsynced (benchmarks only). */;
      unsafeNoFsync?: boolean;
    };

const commitHooks = new WeakMap<object, (() => void)[]>();

/**
 * Runs `hook` once the transaction `tx` has committed (never if it rolls back); outside a
 * transaction, at once. Lets a writer wake whatever waits for its rows without every caller
 * having to remember it.
 */
export function afterCommit(tx: Executor, hook: () => void): void {
  const hooks = commitHooks.get(tx);
  if (hooks) hooks.push(hook);
  else hook();
}

/** Runs `fn` through `begin` (a driver's transaction), then its after-commit hooks. */
async function withCommitHooks<T>(
  begin: (body: (tx: Executor) => Promise<T>) => Promise<T>,
  fn: (tx: Executor) => Promise<T>,
  stats: DatabaseStats,
  driver: Database["driver"],
): Promise<T> {
  let hooks: (() => void)[] = [];
  stats.transactions += 1;
  stats.statements += 2; // BEGIN and COMMIT (or ROLLBACK)
  countPeriodicStatements(2);
  const body = (tx: Executor) => {
    hooks = [];
    commitHooks.set(tx, hooks);
    return fn(tx);
  };
  const result = tracingOn() ? await tracedTransaction(begin, body, driver) : await begin(body);
  for (const hook of hooks) hook();
  return result;
}

/**
 * A transaction in a `transaction` span (OpenTelemetry's database conventions), with the number
 * of statements it ran (BEGIN and COMMIT included) as `db.statements`, never their text.
 */
function tracedTransaction<T>(
  begin: (body: (tx: Executor) => Promise<T>) => Promise<T>,
  body: (tx: Executor) => Promise<T>,
  driver: Database["driver"],
): Promise<T> {
  const counter = { n: 2 };
  return inSpan(
    "transaction",
    { kind: SpanKind.CLIENT, attributes: { "db.system.name": "postgresql", "db.operation.name": "transaction", "shop.db.driver": driver } },
    async (span) => {
      try {
        return await countingStatements(counter, () => begin(body));
      } finally {
        span?.setAttribute("db.statements", counter.n);
      }
    },
  );
}

/** Test hooks of an embedded database (the fault simulator, sim/); production passes none. */
export interface DatabaseHooks {
  /** Called before each statement is sent (not BEGIN/COMMIT); throwing fails that statement. */
  onStatement?: () => void;
}

/** A drizzle logger that only counts the statements it sees (and calls the simulator's hook, if any). */
const counting = (stats: DatabaseStats, onStatement?: () => void) => ({
  logQuery: () => {
    stats.statements += 1;
    countPeriodicStatements();
    countStatement();
    onStatement?.();
  },
});

/** Opens the database named by `target`. */
export async function openDatabase(target: DatabaseTarget, log: Logger, hooks: DatabaseHooks = {}): Promise<Database> {
  return target.driver === "postgres"
    ? openPostgres(target.url, target.poolSize, log)
    : openPglite(target.dataDir, log, hooks, target.unsafeNoFsync ?? false);
}

async function openPglite(dataDir: string | null, log: Logger, hooks: DatabaseHooks, unsafeNoFsync: boolean): Promise<Database> {
  const started = Date.now();
  const unlock = dataDir ? lockDataDir(dataDir) : () => {};
  let client: PGlite;
  let durability: Durability | null;
  try {
    if (dataDir) await ensureDataDir(dataDir);
    ({ client, durability } = await createPglite(dataDir, await pgliteOptions(), unsafeNoFsync));
  } catch (err) {
    unlock();
    throw err;
  }
  log.info("PGlite open", { data_dir: dataDir ?? "memory", ms: Date.now() - started, durable: durability !== null });
  if (dataDir && unsafeNoFsync)
    log.warn(
      "PGLITE_UNSAFE_NO_FSYNC=true: commits are not fsynced; an OS crash or a power cut can lose answered orders or damage the data directory",
    );
  // Nothing is acknowledged before it is on disk: each unit of work waits for its commits' fsync (grouped).
  const durable = <T>(work: Promise<T>): Promise<T> => (durability ? work.then(async (r) => (await durability.barrier(), r)) : work);
  const stats: DatabaseStats = { statements: 0, transactions: 0 };
  const db: Executor = drizzlePglite(client, { logger: counting(stats, hooks.onStatement) });
  // One connection: every unit of work takes turns, so no query lands inside another's transaction.
  const exclusive = createMutex();
  let closed = false;
  let written = stats.transactions;
  const checkpoints = setInterval(() => {
    work.timer_wakeups += 1;
    if (closed || stats.transactions === written) return;
    written = stats.transactions;
    // PGlite has no autovacuum either: without a vacuum, the space of deleted and updated rows
    // (retention's prunes, outbox states, balances) is never reused and the files grow for good
    // (the soak: +8 MB a minute at 30 orders/s). Analyze too, so the planner knows the tables.
    exclusive(async () => {
      await client.exec("vacuum analyze");
      await client.exec("checkpoint");
    }).catch((err) => log.warn("PGlite vacuum and checkpoint failed", { err }));
  }, CHECKPOINT_EVERY_MS);
  checkpoints.unref();
  return {
    driver: "pglite",
    concurrentTransactions: false,
    stats,
    pool: () => ({ max: 1, inUse: Math.min(1, exclusive.queued), waiting: Math.max(0, exclusive.queued - 1) }),
    transaction: (fn) => durable(exclusive(() => withCommitHooks((body) => db.transaction(body), fn, stats, "pglite"))),
    read: (fn) => durable(exclusive(() => fn(db))),
    autocommit: (fn) => durable(exclusive(() => fn(db))),
    migrate: (name, folder) => durable(exclusive(() => migratePglite(drizzlePglite(client), migrationConfig(name, folder)))),
    ping: () => exclusive(async () => void (await client.query("select 1"))),
    close: () =>
      exclusive(async () => {
        if (closed) return;
        closed = true;
        clearInterval(checkpoints);
        await client.close();
        durability?.flush();
        if (durability) log.info("PGlite closed", { transactions: stats.transactions, ...durability.stats });
        unlock();
      }),
  };
}

const RETRYABLE = new Set(["40001", "40P01"]);

/**
 * postgres.js with every statement prepared. drizzle asks postgres.js to prepare only the
 * queries a caller named, and an unnamed statement with parameters costs two round trips
 * (Parse and Describe, then Bind and Execute) and a parse and plan in PostgreSQL every time;
 * a prepared one is a single Bind and Execute once its connection has seen the text. Each
 * connection keeps a statement per distinct SQL text, so hot paths keep their text fixed
 * (`= any($1)` rather than an IN list whose length varies). Transactions, savepoints and
 * reconnects are postgres.js's business: a new connection prepares again on first use.
 *
 * Why a Proxy, the one left around a library (src/db/database.test.ts fails without it): no
 * setting of either library does this. drizzle-orm 0.45's postgres-js session passes
 * `{ prepare: name !== undefined }` to `unsafe()` with every query, and postgres.js lets a query's
 * own `prepare` beat the client's `prepare: true` (connection.js `build()`), so the client option
 * is ignored (drizzle-orm issue 6096, fix proposed in pull request 6098; once drizzle passes the
 * client's setting, this Proxy goes and the client's default `prepare: true` does the job). A
 * subclass is impossible (postgres() returns a function, and drizzle makes a fresh session over
 * each transaction's and savepoint's handle), and a plain wrapper object would have to be cast to
 * the whole `Sql` type drizzle requires: the Proxy alone changes `unsafe`, `begin` and
 * `savepoint` and passes every other member of the real client through.
 */
function preparing<T extends postgres.Sql | postgres.TransactionSql>(client: T): T {
  return new Proxy(client, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      if (prop === "unsafe") {
        return (query: string, params?: postgres.ParameterOrJSON<never>[], options?: postgres.UnsafeQueryOptions) =>
          target.unsafe(query, params, { ...options, prepare: true });
      }
      if (prop === "begin" || prop === "savepoint") {
        // The transaction's own handle, prepared the same way. Its callback is the last argument.
        return (...args: unknown[]) => {
          const body = args.pop() as (tx: postgres.TransactionSql) => unknown;
          return (value as (...a: unknown[]) => unknown).call(target, ...args, (tx: postgres.TransactionSql) => body(preparing(tx)));
        };
      }
      return value;
    },
  });
}

async function openPostgres(url: string, poolSize: number, log: Logger): Promise<Database> {
  const client = postgres(url, {
    max: poolSize,
    connect_timeout: 5,
    idle_timeout: 30,
    max_lifetime: 30 * 60,
    // Seconds before reconnecting after a failed connection. postgres.js's default grows with the
    // failures shared by the pool (3^n / 100 s, up to 20 s), so after an outage of a few seconds
    // requests waited 10-20 s for a server that was back long before: cap it at one second.
    backoff: (retries: number) => Math.min(1, 0.05 * 2 ** retries) * (0.5 + Math.random() / 2),
    onnotice: () => {},
  });
  // A failure to connect names the server and the cause (never the password), not drizzle's "Failed query".
  const explained = (err: unknown): never => {
    throw explainConnectionError(err, client.options);
  };
  const stats: DatabaseStats = { statements: 0, transactions: 0 };
  const pg = drizzlePostgres(preparing(client), { logger: counting(stats) });
  const db: Executor = pg;
  const busy = createBusyCounter();
  return {
    driver: "postgres",
    concurrentTransactions: true,
    stats,
    pool: () => ({ max: poolSize, inUse: Math.min(busy.now, poolSize), waiting: Math.max(0, busy.now - poolSize) }),
    transaction: (fn) => busy.counted(() => retryingTransaction(db, fn, stats, log)),
    read: (fn) => busy.counted(() => fn(db)),
    autocommit: (fn) => busy.counted(() => fn(db)),
    migrate: (name, folder) => withRetry(() => migratePostgres(pg, migrationConfig(name, folder)).catch(explained), log),
    ping: () => busy.counted(async () => void (await db.execute(sql`select 1`).catch(explained))),
    close: () => client.end({ timeout: 5 }),
    session: () => openSession(url, stats),
  };
}

/** Units of work in flight (postgres.js has no pool API: see PoolUse). */
function createBusyCounter() {
  const counter = {
    now: 0,
    async counted<T>(fn: () => Promise<T>): Promise<T> {
      counter.now += 1;
      try {
        return await fn();
      } finally {
        counter.now -= 1;
      }
    },
  };
  return counter;
}

/** Runs `fn` in a transaction, again on a serialization failure or a deadlock (up to 5 attempts). */
async function retryingTransaction<T>(db: Executor, fn: (tx: Executor) => Promise<T>, stats: DatabaseStats, log: Logger): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await withCommitHooks((body) => db.transaction(body), fn, stats, "postgres");
    } catch (err) {
      const code = pgCode(err);
      if (!code || !RETRYABLE.has(code) || attempt >= 5) throw err;
      log.debug("transaction retried", { code, attempt });
    }
  }
}

/** A connection of its own (see Database.session), its statements counted in `stats` except through `quiet`. */
async function openSession(url: string, stats: DatabaseStats): Promise<DbSession> {
  let closed: (() => void) | null = null;
  const conn = postgres(url, {
    max: 1,
    connect_timeout: 5,
    idle_timeout: 0,
    max_lifetime: 0,
    onnotice: () => {},
    onclose: () => closed?.(),
  });
  return {
    db: drizzlePostgres(preparing(conn), { logger: counting(stats) }),
    quiet: drizzlePostgres(preparing(conn)),
    onClose(hook) {
      closed = () => {
        closed = null;
        hook();
      };
    },
    listen: async (channel, onNotify) => void (await conn.listen(channel, () => onNotify())),
    close: () => conn.end({ timeout: 0 }),
  };
}

const migrationConfig = (name: string, folder: string) => ({
  migrationsFolder: folder,
  migrationsSchema: "drizzle",
  migrationsTable: `__migrations_${name}`,
});

/** Services migrating one database at once can race on `create schema drizzle`: try again. */
async function withRetry(fn: () => Promise<void>, log: Logger): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= 5 || isPermanentRefusal(err)) throw err;
      log.warn("migration failed; retrying", { attempt, err });
      await Bun.sleep(200 * attempt);
    }
  }
}

/** The SQLSTATE of a driver error, looking through drizzle's wrapping. */
function pgCode(err: unknown): string | undefined {
  for (const e of causeChain(err)) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

/** postgres.js's connection errors (CONNECTION_CLOSED, CONNECT_TIMEOUT, ...) and the socket's own. */
const CONNECTION_ERRORS =
  /ECONNREFUSED|ECONNRESET|ECONNABORTED|EPIPE|ETIMEDOUT|ENOTCONN|EHOSTUNREACH|ENETUNREACH|ERR_SOCKET_CLOSED|CONNECTION_|connect_timeout|terminating connection/i;

/**
 * True when the database could not be reached (down, restarting, connection lost): the errors
 * above, and PostgreSQL's SQLSTATE classes 08 (connection exception) and 57P (shutting down,
 * starting up, terminated by the administrator).
 */
export function isConnectionError(err: unknown): boolean {
  return causeChain(err).some((e) => {
    const code = String((e as { code?: unknown }).code ?? "");
    const message = String((e as { message?: unknown }).message ?? "");
    return CONNECTION_ERRORS.test(code) || CONNECTION_ERRORS.test(message) || code.startsWith("57P") || /^08[0-9A-Z]{3}$/.test(code);
  });
}
