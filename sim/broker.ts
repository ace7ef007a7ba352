/**
 * A simulated broker with Kafka's guarantees and nothing more: per-partition logs that survive a
 * crash, committed offsets per consumer group, and deliveries the scheduler chooses. Records of
 * one partition reach a group in log order; a batch whose acknowledgement is lost (or whose
 * process crashed before acknowledging) is delivered again from the committed offset.
 */
import { type BatchHandler, type Bus, type BusRecord, type ConsumerState, idleState } from "../src/bus/bus";
import { partitionFor } from "../src/bus/partitioner";

/** One group's position on one partition. */
export interface Lane {
  group: string;
  topic: string;
  partition: number;
  /** Offset of the next record not yet acknowledged. */
  committed: number;
  /** A delivery to this lane is being handled. */
  busy: boolean;
}

/** What the broker asks the scheduler when a publish arrives (faults), per publish call. */
export type PublishFate = "ok" | "fail" | "ack-lost";

/** The broker, shared by every incarnation of the simulated process. */
export class SimBroker {
  readonly logs = new Map<string, BusRecord[][]>();
  readonly lanes: Lane[] = [];
  private readonly handlers = new Map<string, BatchHandler>();
  /** The incarnation whose buses are alive; older buses are dead (their process crashed). */
  epoch = 0;

  constructor(
    readonly partitions: number,
    /** Decides a publish's fate (faults) and records it in the trace. */
    private readonly onPublish: (records: BusRecord[]) => PublishFate,
  ) {}

  private log(topic: string): BusRecord[][] {
    let list = this.logs.get(topic);
    if (!list) {
      list = Array.from({ length: this.partitions }, () => []);
      this.logs.set(topic, list);
    }
    return list;
  }

  /** Records waiting for `lane`, from its committed offset. */
  backlog(lane: Lane): BusRecord[] {
    return (this.log(lane.topic)[lane.partition] as BusRecord[]).slice(lane.committed);
  }

  /** Lanes with records to deliver and no delivery in progress. */
  deliverable(): Lane[] {
    return this.lanes.filter((l) => !l.busy && this.handlers.has(l.group) && this.backlog(l).length > 0);
  }

  /** The live handler of `group`. */
  handler(group: string): BatchHandler | undefined {
    return this.handlers.get(group);
  }

  /** A crash: every bus of the current incarnation dies, deliveries in progress are forgotten (not acknowledged). */
  crash(): void {
    this.epoch += 1;
    this.handlers.clear();
    for (const l of this.lanes) l.busy = false;
  }

  /** The bus one incarnation of the process sees. */
  busFor(epoch: number): Bus {
    const states: ConsumerState[] = [];
    const alive = () => epoch === this.epoch;
    return {
      kind: "memory",
      publishConcurrency: 8,
      start: async () => {
        for (const s of states) Object.assign(s, { state: "joined", joined: true });
      },
      joined: async () => {},
      consumers: () => states.map((s) => ({ ...s })),
      onFatal() {},
      subscribe: (sub) => {
        states.push(idleState(sub));
        this.handlers.set(sub.group, sub.handler);
        for (const topic of sub.topics) {
          this.log(topic);
          for (let p = 0; p < this.partitions; p++) {
            if (!this.lanes.some((l) => l.group === sub.group && l.topic === topic && l.partition === p)) {
              this.lanes.push({ group: sub.group, topic, partition: p, committed: 0, busy: false });
            }
          }
        }
      },
      publish: (records) => {
        // A dead process's publish never returns: its caller is gone.
        if (!alive()) return new Promise<void>(() => {});
        const fate = this.onPublish(records);
        if (fate === "fail") return Promise.reject(new Error("simulated: publish failed (broker unreachable)"));
        for (const r of records)
          (this.log(r.topic)[partitionFor(r.key, this.partitions)] as BusRecord[]).push({ ...r, headers: { ...r.headers } });
        if (fate === "ack-lost") return Promise.reject(new Error("simulated: publish acknowledgement lost (records were written)"));
        return Promise.resolve();
      },
      check: async () => {
        if (!alive()) throw new Error("process crashed");
      },
      stop: async () => {},
    };
  }
}
