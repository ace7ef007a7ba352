/**
 * The figures of a soak run (bench/soak.ts): the tables counted at each sample, the latency
 * probe, and the test of whether a series levelled off.
 */
import { readdirSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { percentile } from "./phase";
import { num } from "./table";

/** The tables retention prunes, by module. */
const PRUNED: Record<string, string[]> = {
  registry: ["inbox", "outbox", "dead_letters", "idempotency_keys"],
  wallet: ["inbox", "outbox", "dead_letters", "rejected_orders"],
  storage: ["inbox", "outbox", "dead_letters", "rejected_orders"],
};
const prunedTables = Object.entries(PRUNED).flatMap(([schema, tables]) => tables.map((t) => `${schema}.${t}`));

/** What is counted in the database at each sample: a column heading and its SQL expression. */
export const COUNTED: { column: string; sql: string }[] = [
  { column: "orders", sql: "select count(*) from registry.orders" },
  { column: "pending", sql: "select count(*) from registry.orders where status = 'pending'" },
  { column: "r inbox", sql: "select count(*) from registry.inbox" },
  { column: "r outbox", sql: "select count(*) from registry.outbox" },
  { column: "r keys", sql: "select count(*) from registry.idempotency_keys" },
  { column: "w inbox", sql: "select count(*) from wallet.inbox" },
  { column: "w outbox", sql: "select count(*) from wallet.outbox" },
  { column: "w rejected", sql: "select count(*) from wallet.rejected_orders" },
  { column: "s inbox", sql: "select count(*) from storage.inbox" },
  { column: "s outbox", sql: "select count(*) from storage.outbox" },
  { column: "s rejected", sql: "select count(*) from storage.rejected_orders" },
  {
    column: "dead",
    sql: Object.keys(PRUNED)
      .map((m) => `(select count(*) from ${m}.dead_letters)`)
      .join(" + "),
  },
  {
    column: "pruned MB",
    sql: `select sum(pg_total_relation_size(t::regclass)) / 1048576.0 from unnest(array[${prunedTables.map((t) => `'${t}'`).join(", ")}]) t`,
  },
];

/**
 * The files (relative to the data directory) of the pruned tables, their indexes and TOAST
 * tables, so their size can be read from disk while PGlite has the directory open.
 */
export const PRUNED_FILES_QUERY = `with t as (select x::regclass::oid as oid from unnest(array[${prunedTables.map((t) => `'${t}'`).join(", ")}]) x),
  toast as (select reltoastrelid as oid from pg_class where oid in (select oid from t) and reltoastrelid <> 0)
  select pg_relation_filepath(oid) as path from (
    select oid from t union all select oid from toast
    union all select indexrelid from pg_index where indrelid in (select oid from t union all select oid from toast)
  ) r`;

/** MiB on disk of the relation files `paths` (each with its segments .1, .2 and forks _fsm, _vm). */
export function relationFilesMb(dataDir: string, paths: string[]): number {
  let bytes = 0;
  for (const path of paths) {
    const dir = join(dataDir, dirname(path));
    const base = basename(path);
    for (const name of readdirSync(dir)) {
      if (name === base || name.startsWith(`${base}.`) || name.startsWith(`${base}_`)) bytes += statSync(join(dir, name)).size;
    }
  }
  return bytes / 1_048_576;
}

/** Row counts print as integers, the rest with num()'s precision. */
export const fmt = (column: string, v: number) =>
  Number.isFinite(v) && COUNTED.some((c) => c.column === column) && column !== "pruned MB" ? v.toFixed(0) : num(v);

const COUNT_QUERY = `select ${COUNTED.map((c, i) => `(${c.sql})::float8 as c${i}`).join(", ")}`;

/** Runs COUNT_QUERY; the figures by column heading. */
export type Counter = () => Promise<Record<string, number>>;

export function counterFor(query: (text: string) => Promise<Record<string, unknown>[]>): Counter {
  return async () => {
    const row = (await query(COUNT_QUERY))[0] ?? {};
    return Object.fromEntries(COUNTED.map((c, i) => [c.column, Number(row[`c${i}`])]));
  };
}

/** Requests a cheap route back to back (at most one every `everyMs`), recording each latency. */
export class Prober {
  private latencies: number[] = [];
  private stopping = false;
  private running: Promise<void> | null = null;
  errors = 0;

  constructor(
    readonly url: string,
    private readonly everyMs: number,
  ) {}

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.running;
  }

  /** p50, p99 and max of the latencies (ms) since the last call. */
  take(): { p50: number; p99: number; max: number } {
    const taken = this.latencies.sort((a, b) => a - b);
    this.latencies = [];
    return { p50: percentile(taken, 0.5), p99: percentile(taken, 0.99), max: taken.at(-1) ?? Number.NaN };
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      const started = performance.now();
      try {
        const res = await fetch(this.url);
        await res.arrayBuffer();
        if (res.status === 200) this.latencies.push(performance.now() - started);
        else this.errors += 1;
      } catch {
        this.errors += 1;
      }
      await Bun.sleep(Math.max(1, this.everyMs - (performance.now() - started)));
    }
  }
}

/** The trivial route probed: /health/live checks nothing; before it existed, /products (catalogue cached in memory). */
export async function probeUrl(registry: string): Promise<string> {
  const live = await fetch(`${registry}/health/live`);
  await live.arrayBuffer();
  return live.status === 200 ? `${registry}/health/live` : `${registry}/products`;
}

/** One sample: seconds since the load began, then the figures by column heading. */
export interface Sample {
  t: number;
  figures: Record<string, number>;
}

/** How a series is judged: growth allowed from the middle third's max to the last third's, as a share and in its unit. */
type Rule = { share: number; slack: number } | { shown: string };

function ruleFor(column: string): Rule {
  if (column === "orders") return { shown: "grows (kept by design)" };
  if (column === "probe max ms") return { shown: "not judged (one probe)" };
  if (column === "machine %") return { shown: "not judged (all the machine's work)" };
  if (column === "pending") return { share: 0.5, slack: 50 };
  if (column.startsWith("probe") || column === "CPU %") return { share: 0.5, slack: 5 };
  if (column === "RSS MB" || column === "pruned MB") return { share: 0.1, slack: 2 };
  return { share: 0.1, slack: 10 };
}

/** Compares the last third's max with the middle third's: a table row with the verdict. */
export function judge(samples: Sample[], total: number, column: string): string[] {
  const values = (from: number, to: number) =>
    samples.filter((s) => s.t > from && s.t <= to && Number.isFinite(s.figures[column])).map((s) => s.figures[column] as number);
  const middle = values(total / 3, (2 * total) / 3);
  const last = values((2 * total) / 3, Number.POSITIVE_INFINITY);
  if (middle.length === 0 || last.length === 0) return [column, "-", "-", "-", "-", "too short to tell"];
  const mid = Math.max(...middle);
  const end = Math.max(...last);
  const ratio = mid === 0 ? (end === 0 ? 1 : Number.POSITIVE_INFINITY) : end / mid;
  const figures = [column, fmt(column, mid), fmt(column, end), Number.isFinite(ratio) ? ratio.toFixed(2) : "inf"];
  const rule = ruleFor(column);
  if ("shown" in rule) return [...figures, "-", rule.shown];
  const limit = mid * (1 + rule.share) + rule.slack;
  return [...figures, fmt(column, limit), end <= limit ? "levelled off" : "STILL GROWING"];
}
