/**
 * Idle cost of the split deployment: starts registry, wallet and storage as three processes over
 * Kafka (librdkafka's mock broker) and PostgreSQL, lets them settle, then reads each process's
 * CPU time from /proc over a window with no traffic. Prints % of one core per process.
 */
import { readFileSync } from "node:fs";
import { startSplitShop } from "../test/support/split-shop";

const WINDOW_MS = Number(process.env.IDLE_WINDOW_MS ?? 10_000);
const TICKS = 100; // USER_HZ on Linux

/** utime + stime of a process, in clock ticks. */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

/** Returns % of one core used by each process over the window, with default Kafka settings. */
export async function measureIdleCpu(): Promise<Record<string, number>> {
  const shop = await startSplitShop({ KAFKA_FETCH_MAX_WAIT_MS: "5000" });
  try {
    await Bun.sleep(5000); // settle: group joins, first fetches
    const pids = Object.entries(shop.processes).map(([name, p]) => [name, p.proc.pid] as const);
    const before = pids.map(([, pid]) => cpuTicks(pid));
    const started = performance.now();
    await Bun.sleep(WINDOW_MS);
    const elapsed = (performance.now() - started) / 1000;
    return Object.fromEntries(
      pids.map(([name, pid], i) => [name, ((cpuTicks(pid) - (before[i] ?? 0)) / TICKS / elapsed) * 100]),
    );
  } finally {
    await shop.stop();
  }
}

if (import.meta.main) {
  const usage = await measureIdleCpu();
  for (const [name, pct] of Object.entries(usage)) console.log(`idle cpu  ${name.padEnd(8)} ${pct.toFixed(2)}% of a core`);
}
