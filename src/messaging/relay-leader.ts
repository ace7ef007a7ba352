/**
 * Which outbox relay claims (ADR 0010): on PostgreSQL, several processes of a module share the
 * outbox, and the one holding a session-level advisory lock (keyed by the outbox table) on a
 * connection of its own leads; the others stand by, trying for the lock every second. Claims run
 * on the lock's connection and only match on the backend that took the lock (a session lock lives
 * as long as its backend), so a relay whose connection broke, even one that reconnected silently,
 * cannot claim once another may lead; each second the leader also checks pg_locks. A new leader
 * first returns the rows left `in_flight` to `pending`. PGlite is one process by construction: its
 * relay always leads.
 */
import { type SQL, sql } from "drizzle-orm";
import { getTableConfig } from "drizzle-orm/pg-core";
import type { Database, DbSession, Executor } from "../db/database";
import { rowsOf } from "../db/rows";
import type { Logger } from "../log";
import { createLoop, type Loop } from "../loop";
import type { MessagingTables } from "./tables";

/** How often a standby tries for the lead, and a leader checks it still holds it. */
const ELECT_EVERY_MS = 1000;
/** First key of the relays' advisory locks (the second is the outbox table's). "OBOX". */
const LOCK_CLASS = 0x4f424f58;

/** The advisory-lock key of an outbox: a positive 31-bit hash (FNV-1a) of its schema-qualified name. */
export function outboxLockKey(outbox: MessagingTables["outbox"]): [number, number] {
  const { schema, name } = getTableConfig(outbox);
  let h = 0x811c9dc5;
  for (const ch of `${schema ?? "public"}.${name}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193);
  return [LOCK_CLASS, (h >>> 0) & 0x7fffffff];
}

/**
 * Where claims run, and whether this relay may claim. On PostgreSQL: a dedicated session that
 * holds the outbox's advisory lock, and `fence`, a condition true only in the session holding it.
 */
interface Lead {
  session: DbSession;
  /** True only in the session holding the lock (reads pg_locks: the leader's check each second). */
  holds: SQL;
  /**
   * The claims' fence: true only on the backend that took the lock (`pg_backend_pid()`, no table
   * read). A backend keeps a session lock until it ends, so only that backend may claim; a
   * connection that broke and silently reconnected is a new backend, and matches nothing.
   */
  fence: SQL;
  /** Set when the connection closed or broke: the lock is gone with it. */
  lost: boolean;
}

/** What a relay's leadership needs to know. */
export interface RelayLeaderOptions {
  db: Database;
  outbox: MessagingTables["outbox"];
  log: Logger;
  pollMs: number;
  /** How often a standby tries for the lead (default 1 s, or `pollMs` if shorter). */
  electEveryMs?: number;
  /** Called when this relay takes the lead (it then returns the rows left in flight to `pending`). */
  onLead: () => void;
  /** Called when another process of the module committed rows to the outbox (a notification). */
  wake: () => void;
}

/** One relay's side of the election: whether it leads, where its claims run, and its standby's nudges. */
export class RelayLeader {
  /** False on PGlite (one process: always leading); true where processes share the outbox. */
  readonly elected: boolean;
  private readonly opts: RelayLeaderOptions;
  private readonly everyMs: number;
  private readonly lockClass: number;
  private readonly lockKey: number;
  /** Where the other processes' commits wake the leader. */
  private readonly channel: string;
  /** The tries for the lead (a leader's checks that it holds it), every `electEveryMs`. */
  private readonly elections: Loop;
  /** PostgreSQL: the lead while this relay holds it. */
  private lead: Lead | null = null;
  /** PostgreSQL: a standby's connection, kept for its next try. */
  private standby: Lead | null = null;
  private notifying = false;
  private notifyAgain = false;

  constructor(opts: RelayLeaderOptions) {
    this.opts = opts;
    this.elected = opts.db.session !== undefined;
    this.everyMs = opts.electEveryMs ?? Math.min(ELECT_EVERY_MS, opts.pollMs);
    [this.lockClass, this.lockKey] = outboxLockKey(opts.outbox);
    this.channel = `${getTableConfig(opts.outbox).schema ?? "public"}_outbox_committed`;
    this.elections = createLoop({
      run: () => this.elect(),
      every: this.everyMs,
      failed: (err) => opts.log.warn("outbox relay: election failed; trying again", { err }),
    });
  }

  /** True while this relay is the one that claims its outbox's rows. */
  leading(): boolean {
    return !this.elected || (this.lead !== null && !this.lead.lost);
  }

  /** PostgreSQL: tries for the lead once now, then every `electEveryMs` until stopped. */
  async start(): Promise<void> {
    await this.elect();
    this.elections.runIn(this.everyMs);
  }

  /** Runs a claim: on PGlite, as any statement; on PostgreSQL, on the lead's session, fenced by its lock. */
  claimWith<T>(fn: (q: Executor, fence: SQL | undefined) => Promise<T>): Promise<T> {
    if (!this.elected) return this.opts.db.autocommit((q) => fn(q, undefined));
    const current = this.lead;
    if (!current || current.lost) return Promise.reject(new Error("outbox relay: not leading"));
    return fn(current.session.db, current.fence);
  }

  /** Gives the lead up: closes its session (the lock goes with it). */
  async resign(why: string): Promise<void> {
    const current = this.lead;
    if (!current) return;
    this.lead = null;
    this.opts.log.info("outbox relay: lead given up", { why });
    await current.session.close().catch(() => {});
  }

  /** A standby's nudge: tell the leader, at most one notification in flight (later nudges ride on the next). */
  notify(): void {
    if (this.elections.stopped()) return;
    if (this.notifying) {
      this.notifyAgain = true;
      return;
    }
    this.notifying = true;
    this.opts.db
      .autocommit((q) => q.execute(sql`select pg_notify(${this.channel}, '')`))
      .catch((err) => this.opts.log.debug("outbox relay: notify failed (the leader polls anyway)", { err }))
      .finally(() => {
        this.notifying = false;
        if (this.notifyAgain) {
          this.notifyAgain = false;
          this.notify();
        }
      });
  }

  /** Stops trying for the lead, and waits for a try under way; the lead itself is kept until `close`. */
  async stopElecting(): Promise<void> {
    await this.elections.stop();
  }

  /** Gives the lead up and closes a standby's connection. */
  async close(): Promise<void> {
    await this.resign("stopping");
    await this.standby?.session.close().catch(() => {});
    this.standby = null;
  }

  /** Takes the lead if the lock is free; a leader checks it still holds it. */
  private async elect(): Promise<void> {
    if (this.elections.stopped()) return;
    if (this.lead?.lost) await this.resign("lock connection closed");
    if (this.lead) await this.checkHold(this.lead);
    else await this.tryToLead();
  }

  /** Still holding it? A broken connection reports on use; a silent reconnect fails the fence. */
  private async checkHold(lead: Lead): Promise<void> {
    try {
      const [row] = rowsOf(await lead.session.quiet.execute(sql`select ${lead.holds} and ${lead.fence} as held`));
      if (row?.held !== true) await this.resign("lock no longer held");
    } catch (err) {
      this.opts.log.warn("outbox relay: lock check failed", { err });
      await this.resign("lock check failed");
    }
  }

  /** Tries for the lock; a standby keeps its connection between tries (no new connection every second). */
  private async tryToLead(): Promise<void> {
    let candidate = this.standby?.lost ? null : this.standby;
    this.standby = null;
    try {
      candidate ??= await this.openCandidate();
      const [row] = rowsOf(
        await candidate.session.quiet.execute(
          sql`select pg_try_advisory_lock(${this.lockClass}::int, ${this.lockKey}::int) as ok, pg_backend_pid() as pid`,
        ),
      );
      if (this.elections.stopped() || candidate.lost) {
        await candidate.session.close().catch(() => {});
        return;
      }
      if (row?.ok !== true) {
        this.standby = candidate;
        return;
      }
      await this.takeLead(candidate, Number(row.pid));
    } catch (err) {
      this.opts.log.warn("outbox relay: election failed; trying again", { err });
      if (candidate) await candidate.session.close().catch(() => {});
    }
  }

  /** A connection of its own to try for the lock on, noting when it closes. */
  private async openCandidate(): Promise<Lead> {
    const session = await (this.opts.db.session as () => Promise<DbSession>)();
    const fresh: Lead = {
      session,
      lost: false,
      holds: sql`exists (select 1 from pg_locks where locktype = 'advisory' and pid = pg_backend_pid() and granted
            and classid::bigint = ${this.lockClass}::bigint and objid::bigint = ${this.lockKey}::bigint and objsubid = 2)`,
      // Until the lock is taken: a pid no backend has.
      fence: sql`false`,
    };
    session.onClose(() => {
      fresh.lost = true;
    });
    return fresh;
  }

  /** The lock is taken on the backend `pid`: fence the claims to it, listen for commits, and lead. */
  private async takeLead(candidate: Lead, pid: number): Promise<void> {
    candidate.fence = sql`pg_backend_pid() = ${pid}::int`;
    // A leader whose host vanished (no FIN) is noticed by the server in ~20 s, not the kernel's 2 h.
    await candidate.session.quiet
      .execute(
        sql`select set_config('tcp_keepalives_idle', '10', false), set_config('tcp_keepalives_interval', '5', false), set_config('tcp_keepalives_count', '2', false)`,
      )
      .catch(() => {});
    // Commits in the other processes of the module wake this relay (they nudge a standby).
    await candidate.session.listen(this.channel, this.opts.wake);
    this.lead = candidate;
    this.opts.log.info("outbox relay: leading", { outbox: getTableConfig(this.opts.outbox).name });
    this.opts.onLead();
  }
}
