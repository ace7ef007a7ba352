/**
 * In-process bus with Kafka's shape: each topic has partitions chosen by key (murmur2), each
 * consumer group drains every partition in its own lane, in order, a batch at a time. A publish
 * resolves only once every group has applied its records, so the outbox rows behind them stay
 * the durable copy until then: a crash loses nothing that a restart's relay will not resend.
 */

import { InvariantError } from "../errors";
import type { Logger } from "../log";
import {
  type BatchHandler,
  type Bus,
  type BusRecord,
  type ConsumerState,
  idleState,
  MAX_BATCH,
  retryDelayMs,
  type Subscription,
} from "./bus";
import { partitionFor } from "./partitioner";

/**
 * A lane is busy when records keep coming: it handled two batches within this many lingers, or
 * one within them and more than one record came meanwhile (or was in it). One linger was too
 * short: at half of saturation on PGlite (a record every 7-8 ms, batches of 3-5 ms) most records
 * then counted as idle and went alone, 11.6 statements per order against 4.8 and 1.4 times the
 * CPU per order.
 * One batch alone does not make a lane busy: an order's two StepSucceeded reach registry's lane
 * a few ms apart, and the second waited a linger for records that never came (+5 ms on every
 * order at a trickle).
 */
const BUSY_WINDOW = 4;

/** Whether `lane`, with `waiting` records to take, should wait a linger to fill a batch: it is busy (see BUSY_WINDOW). */
function busy(lane: Lane, waiting: number, lingerMs: number): boolean {
  const since = performance.now() - BUSY_WINDOW * lingerMs;
  return lane.lastBatchAt > since && (waiting > 1 || lane.lastBatchSize > 1 || lane.previousBatchAt > since);
}

interface Entry {
  record: BusRecord;
  /** Lanes that have not applied it yet. */
  waiting: number;
  applied: () => void;
  dropped: (err: Error) => void;
}

interface Lane {
  group: string;
  state: ConsumerState;
  handler: BatchHandler;
  /** Absolute offset of the next record to hand to the handler. */
  offset: number;
  running: Promise<void> | null;
  attempt: number;
  /** When its last batch and the one before were handled (performance.now()); -Infinity before. */
  lastBatchAt: number;
  previousBatchAt: number;
  /** How many records its last batch held. */
  lastBatchSize: number;
}

interface Partition {
  /** Absolute offset of entries[0]; earlier entries were applied by every lane and dropped. */
  base: number;
  entries: Entry[];
  lanes: Lane[];
}

/** Pauses that stop() can cut short, so that no lane lingers or backs off past it. */
function createPauses() {
  const pending = new Set<{ resolve: () => void; timer: Timer }>();
  return {
    pause: (ms: number) =>
      new Promise<void>((resolve) => {
        const entry = { resolve, timer: setTimeout(() => (pending.delete(entry), resolve()), ms) };
        pending.add(entry);
      }),
    endAll() {
      for (const entry of pending) {
        clearTimeout(entry.timer);
        entry.resolve();
      }
    },
  };
}

/** The promise joined() returns, and its two outcomes. */
function createJoinSignal() {
  let markJoined!: () => void;
  let failJoin!: (err: Error) => void;
  const joined = new Promise<void>((resolve, reject) => {
    markJoined = resolve;
    failJoin = reject;
  });
  joined.catch(() => {});
  return { joined, markJoined, failJoin };
}

/** Every topic's partitions, made on first use. */
function createTopics(partitions: number) {
  const topics = new Map<string, Partition[]>();
  return {
    partitionsOf(topic: string): Partition[] {
      let list = topics.get(topic);
      if (!list) {
        list = Array.from({ length: partitions }, () => ({ base: 0, entries: [], lanes: [] }));
        topics.set(topic, list);
      }
      return list;
    },
    all: (): Partition[] => [...topics.values()].flat(),
  };
}
type Topics = ReturnType<typeof createTopics>;

/** Drops the entries at the head of `p` that every lane has applied. */
function trim(p: Partition): void {
  let n = 0;
  while (n < p.entries.length && (p.entries[n] as Entry).waiting === 0) n++;
  if (n > 0) {
    p.entries.splice(0, n);
    p.base += n;
  }
}

/** What draining a lane needs from its bus. */
interface DrainContext {
  log: Logger;
  lingerMs: number;
  stopping: () => boolean;
  pause: (ms: number) => Promise<void>;
}

/** Hands `lane` its partition's records a batch at a time until it has none left (or the bus stops). */
async function drain(p: Partition, lane: Lane, ctx: DrainContext): Promise<void> {
  while (!ctx.stopping() && lane.offset < p.base + p.entries.length) {
    // On a busy lane a short wait lets records published meanwhile join the batch (Kafka's linger.ms).
    const waiting = p.base + p.entries.length - lane.offset;
    if (waiting < MAX_BATCH && busy(lane, waiting, ctx.lingerMs)) await ctx.pause(ctx.lingerMs);
    const from = lane.offset - p.base;
    const batch = p.entries.slice(from, from + MAX_BATCH);
    const done = await handleBatch(lane, batch, ctx.log);
    lane.previousBatchAt = lane.lastBatchAt;
    lane.lastBatchAt = performance.now();
    lane.lastBatchSize = batch.length;
    for (const entry of batch.slice(0, done)) if (--entry.waiting === 0) entry.applied();
    lane.offset += done;
    trim(p);
    if (done < batch.length) {
      lane.attempt += 1;
      await ctx.pause(retryDelayMs(lane.attempt));
    } else {
      lane.attempt = 0;
    }
  }
}

/** Starts draining `lane` unless it is already running; once it ends, again if records arrived meanwhile. */
function keepDraining(p: Partition, lane: Lane, ctx: DrainContext): void {
  if (lane.running) return;
  lane.running = drain(p, lane, ctx).finally(() => {
    lane.running = null;
    if (lane.offset < p.base + p.entries.length && !ctx.stopping()) keepDraining(p, lane, ctx);
  });
}

/** Runs the lane's handler on `batch`: how many records it applied (none if it threw, noted on the lane's state). */
async function handleBatch(lane: Lane, batch: Entry[], log: Logger): Promise<number> {
  lane.state.last_poll_at = new Date().toISOString();
  try {
    return Math.max(0, Math.min(batch.length, await lane.handler(batch.map((e) => e.record))));
  } catch (err) {
    log.warn("handler failed; will retry", { topic: batch[0]?.record.topic, group: lane.group, err });
    lane.state.last_error = err instanceof Error ? err.message : String(err);
    lane.state.last_error_at = new Date().toISOString();
    return 0;
  }
}

/** A consumer's state once its group has joined: every partition of its topics is its own. */
function markJoinedState(state: ConsumerState, topics: Topics): void {
  state.state = "joined";
  state.joined = true;
  state.partitions = Object.fromEntries(state.topics.map((t) => [t, topics.partitionsOf(t).map((_, i) => i)]));
}

/** A lane per partition of each of `sub`'s topics, waited for by the records already there. */
function addLanes(topics: Topics, sub: Subscription, state: ConsumerState): void {
  for (const name of sub.topics) {
    for (const p of topics.partitionsOf(name)) {
      if (p.lanes.some((l) => l.group === sub.group)) throw new InvariantError(`group ${sub.group} already consumes ${name}`);
      p.lanes.push({
        group: sub.group,
        state,
        handler: sub.handler,
        offset: p.base,
        running: null,
        attempt: 0,
        lastBatchAt: Number.NEGATIVE_INFINITY,
        previousBatchAt: Number.NEGATIVE_INFINITY,
        lastBatchSize: 0,
      });
      for (const entry of p.entries) entry.waiting += 1;
    }
  }
}

/**
 * Appends `records` to their partitions (by key): a promise per record, resolved once every lane
 * has applied it (at once where no group of this process reads the topic), and the partitions touched.
 */
function append(topics: Topics, partitions: number, records: BusRecord[]): { acks: Promise<void>[]; touched: Set<Partition> } {
  const touched = new Set<Partition>();
  const acks = records.map((r) => {
    const p = topics.partitionsOf(r.topic)[partitionFor(r.key, partitions)] as Partition;
    touched.add(p);
    return new Promise<void>((applied, dropped) => {
      if (p.lanes.length === 0) return applied(); // no group in this process reads the topic
      p.entries.push({ record: { ...r, headers: { ...r.headers } }, waiting: p.lanes.length, applied, dropped });
    });
  });
  return { acks, touched };
}

/**
 * Creates the in-memory bus of the single-process mode, with `partitions` per topic. A busy lane
 * (one that handled a batch less than BUSY_WINDOW lingers ago) with less than a full batch
 * waiting lingers `lingerMs` first, so that under load batches grow (one transaction for many
 * records). An idle lane hands a lone record over at once: a trickle of orders pays no linger.
 */
export function createMemoryBus(log: Logger, partitions = 3, lingerMs = 0): Bus {
  const topics = createTopics(partitions);
  let started = false;
  let stopping = false;
  const states: ConsumerState[] = [];
  const join = createJoinSignal();
  const pauses = createPauses();
  const ctx: DrainContext = { log, lingerMs, stopping: () => stopping, pause: pauses.pause };

  const pump = (p: Partition, lane: Lane) => {
    if (started && !stopping) keepDraining(p, lane, ctx);
  };
  const lanes = () => topics.all().flatMap((p) => p.lanes.map((lane) => ({ p, lane })));

  return {
    kind: "memory",
    // Appends happen in call order, so publishes in flight together keep each key's order.
    publishConcurrency: 8,
    async start() {
      if (stopping) throw new Error("bus is stopping");
      started = true;
      // One process holds every partition of every topic: each group is "joined" at once.
      for (const state of states) markJoinedState(state, topics);
      join.markJoined();
      for (const { p, lane } of lanes()) pump(p, lane);
    },
    joined: () => join.joined,
    consumers: () => states.map((s) => ({ ...s, topics: [...s.topics], partitions: { ...s.partitions } })),
    // Nothing here fails for good: a failing handler is retried.
    onFatal() {},
    subscribe(sub: Subscription) {
      if (started) throw new InvariantError("subscribe before start()");
      const state = idleState(sub);
      states.push(state);
      addLanes(topics, sub, state);
    },
    publish(records: BusRecord[]) {
      if (stopping) return Promise.reject(new Error("bus is stopping"));
      const { acks, touched } = append(topics, partitions, records);
      for (const p of touched) for (const lane of p.lanes) pump(p, lane);
      return Promise.all(acks).then(() => undefined);
    },
    async check() {
      if (stopping) throw new Error("bus is stopping");
      if (!started) throw new Error("bus is not started");
    },
    async stop() {
      stopping = true;
      join.failJoin(new Error("bus stopped"));
      for (const state of states) Object.assign(state, { state: "stopped", joined: false, partitions: {} });
      pauses.endAll();
      await Promise.all(lanes().map(({ lane }) => lane.running));
      // Not applied: their outbox rows stay unpublished and are sent again after a restart.
      for (const p of topics.all()) for (const e of p.entries) e.dropped(new Error("bus stopped"));
    },
  };
}
