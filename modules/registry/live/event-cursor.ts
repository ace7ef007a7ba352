/**
 * Where the live feed stands in `order_events` (ids from a sequence). Ids are taken when a row is
 * inserted but become visible when its transaction commits, so with several connections (or
 * several registry processes) id 7 can appear after id 8: the cursor keeps the highest id below
 * which everything was seen, remembers what it saw above it, and waits `gapWaitMs` for a missing
 * id before giving up on it (a rolled-back transaction leaves a hole for good).
 */
export class EventCursor {
  /** Every id up to this one was delivered or given up on. */
  private floor: number;
  /** Ids above the floor already delivered. */
  private readonly seen = new Set<number>();
  /** Ids above the floor not seen yet, with when they were first missed. */
  private readonly missing = new Map<number, number>();

  constructor(
    start: number,
    private readonly gapWaitMs: number,
    /** Holes wider than this are given up on at once (a sequence jump after a crash, a bulk delete). */
    private readonly maxSpan = 10_000,
  ) {
    this.floor = start;
  }

  /** Read the ids above this one next time. */
  get after(): number {
    return this.floor;
  }

  /** Takes the ids read (any order, repeats allowed) and returns those not delivered before. */
  accept(ids: readonly number[], now: number): number[] {
    const fresh: number[] = [];
    for (const id of ids) {
      if (id <= this.floor || this.seen.has(id)) continue;
      this.seen.add(id);
      this.missing.delete(id);
      fresh.push(id);
    }
    let highest = this.floor;
    for (const id of this.seen) if (id > highest) highest = id;
    if (highest - this.floor > this.maxSpan) this.raiseFloor(highest - this.maxSpan);
    for (let id = this.floor + 1; id < highest; id++) {
      if (!this.seen.has(id) && !this.missing.has(id)) this.missing.set(id, now);
    }
    for (;;) {
      const next = this.floor + 1;
      const missedAt = this.missing.get(next);
      if (this.seen.delete(next)) this.floor = next;
      else if (missedAt !== undefined && now - missedAt >= this.gapWaitMs) {
        this.missing.delete(next);
        this.floor = next;
      } else break;
    }
    return fresh.sort((a, b) => a - b);
  }

  /** Ids waited for at the moment (for tests and metrics). */
  get waitingFor(): number {
    return this.missing.size;
  }

  private raiseFloor(to: number): void {
    for (const id of this.seen) if (id <= to) this.seen.delete(id);
    for (const id of this.missing.keys()) if (id <= to) this.missing.delete(id);
    this.floor = to;
  }
}
