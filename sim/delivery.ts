/**
 * Messages through the simulated broker, with their faults: a publish written, refused, or
 * written with its acknowledgement lost; a batch handed to a consumer group, acknowledged, or
 * lost on its way back (delivered again), or cut short by a crash before its acknowledgement.
 * The planted bugs live here too: both are consumers that break at-least-once delivery.
 */
import type { BusRecord } from "../src/bus/bus";
import type { Database } from "../src/db/database";
import type { Lane, PublishFate, SimBroker } from "./broker";
import type { Faults } from "./faults";
import type { Incarnation } from "./processes";
import type { Random } from "./random";
import { describeRecord, type Trace } from "./trace";

/** Bugs the harness can plant, to prove the simulator catches them. */
export type PlantedBug = "no-inbox-dedupe" | "ack-before-apply";
export const PLANTED_BUGS: readonly PlantedBug[] = ["no-inbox-dedupe", "ack-before-apply"];

/** A publish's fate, drawn when faults are on: refused, or written with its acknowledgement lost, 2% each. */
export function publishFate(records: BusRecord[], sched: Random, faults: Faults, trace: Trace): PublishFate {
  const what = records.map(describeRecord).join(", ");
  if (faults.injecting && sched.chance(0.02)) {
    faults.record("publish-failed", `publish of ${what}`);
    return "fail";
  }
  if (faults.injecting && sched.chance(0.02)) {
    faults.record("publish-ack-lost", `publish of ${what} written, acknowledgement lost`);
    return "ack-lost";
  }
  trace.line(`publish ${what}`);
  return "ok";
}

/** What a delivery needs. */
interface DeliveryDeps {
  broker: SimBroker;
  sched: Random;
  faults: Faults;
  trace: Trace;
  /** The database without gate or faults, for the planted no-inbox-dedupe bug. */
  db: Database;
  plant: PlantedBug | undefined;
}

/** A batch handed out and not yet answered. */
interface Handed {
  lane: Lane;
  /** The lane's committed offset when the batch was handed out: the batch's first record. */
  from: number;
  size: number;
  /** The broker's epoch and the incarnation the batch went to: a dead one acknowledges nothing. */
  epoch: number;
  inc: Incarnation;
  /** The lane and offset, as the trace names them. */
  where: string;
}

/** Batches to consumer groups, and their acknowledgements. */
export class Delivery {
  /** Batches handed to a handler, neither acknowledged nor refused yet. */
  inFlight = 0;

  constructor(private readonly deps: DeliveryDeps) {}

  /** Hands `lane` a batch from its committed offset (1-3 records, sometimes up to 20), in `inc`; does not wait for it. */
  deliver(lane: Lane, inc: Incarnation): void {
    const { broker, sched, trace, plant } = this.deps;
    const handler = broker.handler(lane.group);
    if (!handler) return;
    const backlog = broker.backlog(lane);
    const n = Math.min(backlog.length, sched.int(1, sched.chance(0.3) ? 20 : 3));
    const batch = backlog.slice(0, n);
    const handed: Handed = {
      lane,
      from: lane.committed,
      size: batch.length,
      epoch: broker.epoch,
      inc,
      where: `${lane.group} <- ${lane.topic}[${lane.partition}]@${lane.committed}`,
    };
    trace.line(`deliver ${handed.where}: ${batch.map(describeRecord).join(", ")}`);
    lane.busy = true;
    this.inFlight += 1;
    // Planted bug: an at-most-once consumer, whose offset moves before the batch is applied.
    if (plant === "ack-before-apply") lane.committed = handed.from + batch.length;
    const dedupeOff = plant === "no-inbox-dedupe" ? forgetInbox(this.deps.db, lane.group, batch) : Promise.resolve();
    void dedupeOff
      .then(() => handler(batch))
      .then(
        (done) => this.handled(handed, done),
        (err: Error) => this.refused(handed, err),
      );
  }

  /** A crash: the batches in flight will never be answered. */
  forgetInFlight(): void {
    this.inFlight = 0;
  }

  /** The handler applied `done` records of the batch: the offset moves past them, unless a fault loses the acknowledgement. */
  private handled(h: Handed, done: number): void {
    const { broker, sched, faults, trace, plant } = this.deps;
    if (h.epoch !== broker.epoch || h.inc.dead) return; // a dead process acknowledges nothing
    this.inFlight -= 1;
    h.lane.busy = false;
    if (faults.injecting && done > 0 && sched.chance(0.01)) {
      faults.record("crash-before-ack", `${h.where}: ${done} applied and committed, the process dies before acknowledging`);
      faults.crashRequested = "crash between commit and acknowledgement";
      return;
    }
    if (faults.injecting && done > 0 && sched.chance(0.05)) {
      faults.record("ack-lost", `${h.where}: ${done} applied, acknowledgement lost (they will come again)`);
      return;
    }
    if (plant !== "ack-before-apply") h.lane.committed = h.from + done;
    trace.line(`ack ${h.where}: ${done} of ${h.size}`);
  }

  /** The handler threw: nothing is acknowledged, the lane is free for the batch to come again. */
  private refused(h: Handed, err: Error): void {
    if (h.epoch !== this.deps.broker.epoch || h.inc.dead) return;
    this.inFlight -= 1;
    h.lane.busy = false;
    this.deps.trace.line(`nack ${h.where}: handler threw: ${err.message}`);
  }
}

/** Planted bug: the group forgets the batch's message ids in its inbox before each delivery (no dedupe). */
async function forgetInbox(db: Database, group: string, batch: BusRecord[]): Promise<void> {
  const ids = batch.map((r) => r.headers["message-id"]).filter((id): id is string => typeof id === "string");
  if (ids.length === 0) return;
  // Imported here, not at the top: the import's await is part of the timing the seeds' traces depend on.
  const { sql } = await import("drizzle-orm");
  await db.autocommit((q) =>
    q.execute(
      sql`delete from ${sql.identifier(group)}.inbox where message_id in (${sql.join(
        ids.map((id) => sql`${id}::uuid`),
        sql`, `,
      )})`,
    ),
  );
}
