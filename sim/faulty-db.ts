/**
 * The run's database: one in-memory PGlite that outlives every crash. Its statements pass the
 * armed fault (a dropped connection, a serialization failure, a crash between two statements of
 * a transaction), and each process sees it through a gate that closes when the process dies.
 */
import { type Database, openDatabase } from "../src/db/database";
import type { Faults } from "./faults";
import { silentLog } from "./trace";

/** Thrown by a statement when the simulated process crashes inside a transaction. */
class SimulatedCrash extends Error {
  override readonly name = "SimulatedCrash";
}

/** A database error of the kind a dropped connection gives (SQLSTATE 57P01): callers retry it. */
class SimulatedDbError extends Error {
  readonly code = "57P01";
  constructor() {
    super("simulated: terminating connection due to administrator command");
  }
}

/** A statement refused inside a transaction (SQLSTATE 40001): the handler fails, the consumer retries it one by one. */
class SimulatedSerializationFailure extends Error {
  readonly code = "40001";
  constructor() {
    super("simulated: could not serialize access due to concurrent update");
  }
}

/** The process a database handle belongs to: once it is dead, the handle refuses everything. */
interface ProcessGate {
  dead: boolean;
}

/** The PGlite of the run, the fault hook on its statements, and a gated handle per process. */
export class FaultyDatabase {
  /** Transactions open now: the faults other than db-error fire only inside one. */
  private txDepth = 0;
  /** The latest process: statement faults fire only while it lives. */
  private current: ProcessGate | null = null;

  private constructor(
    private readonly faults: Faults,
    /** The database itself, without gate or lost answers: migrations, the planted bug, the final queries. */
    readonly base: Database,
  ) {}

  /** Opens the in-memory database with the fault hook on every statement. */
  static async open(faults: Faults): Promise<FaultyDatabase> {
    // Statements run while opening come before any fault can be armed: the hook has nothing to do yet.
    let db: FaultyDatabase | undefined;
    const base = await openDatabase({ driver: "pglite", dataDir: null }, silentLog(), { onStatement: () => db?.onStatement() });
    db = new FaultyDatabase(faults, base);
    return db;
  }

  /** The database as `process` sees it; `process` becomes the one statement faults fire in. */
  handleFor(process: ProcessGate): Database {
    this.current = process;
    const base = this.base;
    const gate = () => {
      if (process.dead) throw new SimulatedCrash("process crashed");
    };
    return {
      driver: base.driver,
      concurrentTransactions: base.concurrentTransactions,
      get stats() {
        return base.stats;
      },
      pool: () => base.pool(),
      transaction: (fn) =>
        base
          .transaction(async (tx) => {
            gate();
            this.txDepth += 1;
            try {
              return await fn(tx);
            } finally {
              this.txDepth -= 1;
            }
          })
          .then((value) => this.answered(process, value)),
      read: (fn) => base.read(async (q) => (gate(), fn(q))),
      autocommit: (fn) => base.autocommit(async (q) => (gate(), fn(q))).then((value) => this.answered(process, value)),
      migrate: (name, folder) => base.migrate(name, folder),
      ping: async () => (gate(), base.ping()),
      close: async () => {},
    };
  }

  /** Before each statement: fires the armed statement fault once its countdown runs out. */
  private onStatement(): void {
    const { faults, current } = this;
    const armed = faults.armed;
    if (!armed || !faults.injecting || !current || current.dead) return;
    if (armed.kind === "commit-answer-lost") return; // counted in units of work, see answered()
    if (armed.kind !== "db-error" && this.txDepth === 0) return;
    if (--armed.countdown > 0) return;
    faults.armed = null;
    if (armed.kind === "db-error") {
      faults.record("db-error", "a statement fails (connection dropped)");
      throw new SimulatedDbError();
    }
    if (armed.kind === "handler-error") {
      faults.record("handler-error", "a statement inside a transaction fails (serialization failure)");
      throw new SimulatedSerializationFailure();
    }
    faults.record("crash-in-transaction", "the process dies between two statements of a transaction");
    current.dead = true;
    faults.crashRequested = "crash inside a transaction";
    throw new SimulatedCrash("simulated crash");
  }

  /** A unit of work committed; an armed "commit-answer-lost" makes its caller see a dropped connection anyway. */
  private answered<T>(process: ProcessGate, value: T): T {
    const faults = this.faults;
    if (faults.armed?.kind === "commit-answer-lost" && faults.injecting && !process.dead && --faults.armed.countdown <= 0) {
      faults.armed = null;
      faults.record("commit-answer-lost", "a write committed, then the connection dropped before its answer");
      throw new SimulatedDbError();
    }
    return value;
  }
}
