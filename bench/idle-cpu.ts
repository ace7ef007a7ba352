/**
 * Idle cost of a running shop: % of one core per process over a window with no traffic.
 * Run on its own (`bun run bench/idle-cpu.ts`) it starts the split deployment over Kafka
 * (librdkafka's mock broker, default fetch wait) and PostgreSQL and prints the figures.
 */
import { startSplitShop } from "../test/support/split-shop";
import { cpuSince, cpuSnapshot, type Pids } from "./proc-stats";

/** % of one core used by each process over `windowMs` of doing nothing. */
export async function idleCpu(pids: Pids, windowMs: number): Promise<Record<string, number>> {
  const before = cpuSnapshot(pids);
  await Bun.sleep(windowMs);
  return cpuSince(before, pids);
}

/**
 * Waits until every process is back near its idle CPU (within `marginPct` points of `idle`)
 * for two half-second windows in a row, or `timeoutMs` passed; returns whether it got quiet.
 */
export async function waitUntilQuiet(pids: Pids, idle: Record<string, number>, timeoutMs: number, marginPct = 10): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  let quietWindows = 0;
  while (quietWindows < 2) {
    if (performance.now() > deadline) return false;
    const before = cpuSnapshot(pids);
    await Bun.sleep(500);
    const usage = cpuSince(before, pids);
    const quiet = Object.entries(usage).every(([name, pct]) => pct <= (idle[name] ?? 0) + marginPct);
    quietWindows = quiet ? quietWindows + 1 : 0;
  }
  return true;
}

/** Starts the split shop with default Kafka settings, lets it settle, and measures its idle CPU. */
export async function measureIdleCpu(windowMs = Number(process.env.IDLE_WINDOW_MS ?? 10_000)): Promise<Record<string, number>> {
  const shop = await startSplitShop({
    // The shipped defaults (src/config/settings.ts), not the test harness's mock-broker settings.
    KAFKA_FETCH_MAX_WAIT_MS: "5000",
    KAFKA_SESSION_TIMEOUT_MS: "10000",
    KAFKA_HEARTBEAT_INTERVAL_MS: "1000",
    // The shipped config's safety-net poll, not the test fixtures' 1 s.
    REGISTRY_OUTBOX_POLL_MS: "10000",
    WALLET_OUTBOX_POLL_MS: "10000",
    STORAGE_OUTBOX_POLL_MS: "10000",
  });
  try {
    await Bun.sleep(5000); // settle: group joins, first fetches
    const pids = Object.fromEntries(Object.entries(shop.processes).map(([name, p]) => [name, p.proc.pid]));
    return await idleCpu(pids, windowMs);
  } finally {
    await shop.stop();
  }
}

if (import.meta.main) {
  const usage = await measureIdleCpu();
  for (const [name, pct] of Object.entries(usage)) console.log(`idle cpu  ${name.padEnd(8)} ${pct.toFixed(2)}% of a core`);
}
