/**
 * Admission control for new orders: while `maxPending` orders are still pending, a new one
 * waits (up to `waitMs`) for the saga to catch up, then is refused with 503 `overloaded`.
 * Without it, order placement outruns the saga under load: the backlog grows without bound
 * and its tail is rejected by the deadline. The count is read at most every few hundred ms.
 */
import { count, eq } from "drizzle-orm";
import type { Database } from "../../src/db/database";
import { work } from "../../src/work-counters";
import { REGISTRY_ERRORS } from "./errors";
import { orders } from "./schema";

const REFRESH_MS = 200;

/** Gate for `POST /orders`. */
export interface Admission {
  /** Resolves when a new order may be placed; throws DomainError `overloaded` after waiting too long. */
  admit(): Promise<void>;
}

/** An admission gate over registry's pending orders (all processes' orders: it reads the table). */
export function createAdmission(db: Database, opts: { maxPending: number; waitMs: number }): Admission {
  let pending = 0;
  let readAt = 0;
  let reading: Promise<void> | null = null;

  const refresh = () =>
    (reading ??= db
      .read((q) => q.select({ n: count() }).from(orders).where(eq(orders.status, "pending")))
      .then(([row]) => {
        work.admission_reads += 1;
        pending = row?.n ?? 0;
        readAt = Date.now();
      })
      .finally(() => {
        reading = null;
      }));

  return {
    async admit() {
      if (opts.maxPending === 0) return;
      const deadline = Date.now() + opts.waitMs;
      for (;;) {
        if (Date.now() - readAt >= REFRESH_MS) await refresh();
        if (pending < opts.maxPending) {
          pending += 1; // counted until the next read, so a burst cannot overshoot
          return;
        }
        if (Date.now() >= deadline) {
          throw REGISTRY_ERRORS.error("overloaded", `${pending} orders are still in progress; try again shortly`);
        }
        await Bun.sleep(REFRESH_MS);
      }
    },
  };
}
