/**
 * Units of work this process has done, counted in one place so that the bench can account for
 * what one order costs (`bun run bench`'s accounting) and test/statements.test.ts can leave out
 * what periodic jobs did. Each count is a number increment where the work happens; GET /metrics
 * shows them as `shop_work_total{kind}` (src/metrics/work.ts). Per process: in one process
 * the three modules share them, as they share the database handle's statement count.
 */
import { AsyncLocalStorage } from "node:async_hooks";

/** The counts, by kind (the `kind` label). */
export const work = {
  /** Consumer batches handed to a module's handler, and the records in them. */
  consumer_batches: 0,
  consumer_records: 0,
  /** Outbox relay claims (one statement each), those that found no row, and the rows claimed. */
  relay_claims: 0,
  relay_empty_claims: 0,
  relay_rows_claimed: 0,
  /** Mark-published statements of the relay, and the rows they marked; rows released to `pending` after a failed publish. */
  relay_marks: 0,
  relay_rows_marked: 0,
  relay_rows_released: 0,
  /** Reads of registry's pending-order count for admission: at most one per 200 ms, whatever the rate (one statement each). */
  admission_reads: 0,
  /** Version checks of registry's cached catalogue: at most one per 5 s, on a request (one statement each). */
  catalogue_checks: 0,
  /** Timer wake-ups of the periodic jobs (safety-net poll, elections, sweeps, retention, checkpoints). */
  timer_wakeups: 0,
  /** Statements (BEGIN and COMMIT included) run by periodic jobs: part of `shop_db_statements_total`, owed to no order. */
  periodic_statements: 0,
};

/** Kafka requests this process sent, by API name (Fetch, Produce, OffsetCommit, Heartbeat, ...): `shop_kafka_requests_total{api}`. */
export const kafkaRequests: Record<string, number> = {};

/** Counts one Kafka request (a kafkajs `REQUEST` instrumentation event). */
export function countKafkaRequest(event: { payload: { apiName: string } }): void {
  const api = event.payload.apiName;
  kafkaRequests[api] = (kafkaRequests[api] ?? 0) + 1;
}

const periodicWork = new AsyncLocalStorage<true>();

/**
 * Runs `fn`, a periodic job's wake-up, counting it; statements it (and what it awaits) runs
 * count as periodic. Wrap the timer's callback: `setTimeout(() => periodic(run), ms)`.
 */
export function periodic<T>(fn: () => T): T {
  work.timer_wakeups += 1;
  return periodicWork.run(true, fn);
}

/** Called by the database handle for each statement it counts (`n`: BEGIN and COMMIT count 2). */
export function countPeriodicStatements(n = 1): void {
  if (periodicWork.getStore()) work.periodic_statements += n;
}

/** Counts one relay claim that took `rows` rows and marked `marked` confirmed rows published; empty when it did neither. */
export function countClaim(rows: number, marked = 0): void {
  work.relay_claims += 1;
  work.relay_rows_claimed += rows;
  work.relay_rows_marked += marked;
  if (rows === 0 && marked === 0) work.relay_empty_claims += 1;
}

/** Counts one mark-published statement of `rows` rows. */
export function countMark(rows: number): void {
  work.relay_marks += 1;
  work.relay_rows_marked += rows;
}

/** Counts one batch of `records` handed to a consumer group's handler. */
export function countBatch(records: number): void {
  work.consumer_batches += 1;
  work.consumer_records += records;
}
