/** In-process bus: per-topic logs, per-group offsets, sequential at-least-once delivery. */
import type { Logger } from "../log";
import { type Bus, type BusRecord, type RecordHandler, type Subscription, retryDelayMs } from "./bus";

interface TopicLog {
  /** Offset of records[0]; records before it were consumed by every group and dropped. */
  base: number;
  records: BusRecord[];
  cursors: GroupCursor[];
}

interface GroupCursor {
  group: string;
  offset: number;
  handler: RecordHandler;
  running: Promise<void> | null;
}

/** Creates the in-memory bus used by the single-process mode. */
export function createMemoryBus(log: Logger): Bus {
  const topics = new Map<string, TopicLog>();
  let started = false;
  let stopping = false;
  const timers = new Set<{ resolve: () => void; timer: Timer }>();

  const topicLog = (name: string): TopicLog => {
    let t = topics.get(name);
    if (!t) {
      t = { base: 0, records: [], cursors: [] };
      topics.set(name, t);
    }
    return t;
  };

  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const entry = { resolve, timer: setTimeout(() => (timers.delete(entry), resolve()), ms) };
      timers.add(entry);
    });

  const trim = (t: TopicLog) => {
    if (t.cursors.length === 0) return;
    const low = Math.min(...t.cursors.map((c) => c.offset));
    if (low > t.base) {
      t.records.splice(0, low - t.base);
      t.base = low;
    }
  };

  const drain = async (t: TopicLog, c: GroupCursor) => {
    let attempt = 0;
    while (!stopping && c.offset < t.base + t.records.length) {
      const record = t.records[c.offset - t.base] as BusRecord;
      try {
        await c.handler(record);
        c.offset += 1;
        attempt = 0;
        trim(t);
      } catch (err) {
        attempt += 1;
        log.warn("handler failed; will retry", { topic: record.topic, group: c.group, attempt, err });
        await pause(retryDelayMs(attempt));
      }
    }
  };

  const pump = (t: TopicLog, c: GroupCursor) => {
    if (!started || stopping || c.running) return;
    c.running = drain(t, c).finally(() => {
      c.running = null;
      if (!stopping && c.offset < t.base + t.records.length) pump(t, c);
    });
  };

  const pumpAll = () => {
    for (const t of topics.values()) for (const c of t.cursors) pump(t, c);
  };

  return {
    kind: "memory",
    async start() {
      started = true;
      pumpAll();
    },
    subscribe(sub: Subscription) {
      for (const name of sub.topics) {
        const t = topicLog(name);
        if (t.cursors.some((c) => c.group === sub.group)) {
          throw new Error(`group ${sub.group} already consumes ${name}`);
        }
        const cursor = { group: sub.group, offset: t.base, handler: sub.handler, running: null };
        t.cursors.push(cursor);
        pump(t, cursor);
      }
    },
    async publish(records: BusRecord[]) {
      if (stopping) throw new Error("bus is stopping");
      for (const r of records) topicLog(r.topic).records.push({ ...r, headers: { ...r.headers } });
      for (const r of records) {
        const t = topicLog(r.topic);
        for (const c of t.cursors) pump(t, c);
      }
    },
    async check() {
      if (stopping) throw new Error("bus is stopping");
    },
    async stop() {
      stopping = true;
      for (const entry of timers) {
        clearTimeout(entry.timer);
        entry.resolve();
      }
      const running = [...topics.values()].flatMap((t) => t.cursors.map((c) => c.running));
      await Promise.all(running);
    },
  };
}
