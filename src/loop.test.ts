/** The periodic jobs' loop: one pass at a time, asks coalesced, stop waits, errors reported. */
import { expect, test } from "bun:test";
import { eventually } from "../test/support/eventually";
import { createLoop } from "./loop";
import { work } from "./work-counters";

/** A promise and its resolve function. */
const gate = () => {
  let open = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
};

test("asks while a pass runs make one pass after it, never two at once", async () => {
  let passes = 0;
  let inside = 0;
  let most = 0;
  let hold = gate();
  const loop = createLoop({
    run: async () => {
      passes += 1;
      inside += 1;
      most = Math.max(most, inside);
      await hold.opened;
      inside -= 1;
    },
    failed: (err) => {
      throw err;
    },
  });
  loop.runNow();
  await eventually(() => passes === 1);
  loop.runNow();
  loop.runNow();
  loop.runNow();
  const first = hold;
  hold = gate();
  first.open();
  await eventually(() => passes === 2);
  hold.open();
  await loop.stop();
  expect(passes).toBe(2);
  expect(most).toBe(1);
  // No `every`: nothing left on a timer.
  expect(loop.nextRunIn()).toBeNull();
});

test("stop waits for the pass under way, and nothing runs after it", async () => {
  let passes = 0;
  let finished = false;
  const hold = gate();
  const loop = createLoop({
    run: async () => {
      passes += 1;
      await hold.opened;
      finished = true;
    },
    every: 1,
    failed: () => {},
  });
  loop.runNow();
  await eventually(() => passes === 1);
  const stopping = loop.stop();
  loop.runNow();
  loop.runIn(0);
  expect(loop.stopped()).toBe(true);
  let stoppedYet = false;
  void stopping.then(() => {
    stoppedYet = true;
  });
  // A turn of the event loop: the pass still holds, so the stop has not resolved.
  await new Promise((resolve) => setImmediate(resolve));
  expect(stoppedYet).toBe(false);
  hold.open();
  await stopping;
  expect(finished).toBe(true);
  expect(passes).toBe(1);
  expect(loop.nextRunIn()).toBeNull();
});

test("a failed pass is reported and the loop goes on, on its timer", async () => {
  const errors: unknown[] = [];
  let passes = 0;
  const loop = createLoop({
    run: async () => {
      passes += 1;
      if (passes <= 2) throw new Error(`pass ${passes}`);
    },
    every: 1,
    failed: (err) => errors.push(err),
  });
  const wakeups = work.timer_wakeups;
  loop.runIn(0);
  await eventually(() => passes >= 4);
  await loop.stop();
  expect(errors.map((e) => (e as Error).message)).toEqual(["pass 1", "pass 2"]);
  // Every pass came from the timer, counted as periodic work.
  expect(work.timer_wakeups - wakeups).toBeGreaterThanOrEqual(4);
});

test("a pass says when the next comes; runIn keeps the sooner of two", async () => {
  const delays = [60_000, 0];
  let passes = 0;
  const loop = createLoop({
    run: async () => {
      passes += 1;
      return delays.shift();
    },
    every: () => 120_000,
    failed: () => {},
    periodic: false,
  });
  loop.runNow();
  await eventually(() => passes === 1);
  await eventually(() => loop.nextRunIn() !== null);
  const next = loop.nextRunIn() as number;
  expect(next).toBeGreaterThan(30_000);
  expect(next).toBeLessThanOrEqual(60_000);
  // Later than what is scheduled: kept as it is.
  loop.runIn(90_000);
  expect(loop.nextRunIn() as number).toBeLessThanOrEqual(60_000);
  // Sooner: the pass comes then; it asks for the next at once (0), the one after in `every`.
  loop.runIn(0);
  await eventually(() => passes === 3);
  await eventually(() => (loop.nextRunIn() ?? 0) > 60_000);
  await loop.stop();
  expect(passes).toBe(3);
});
