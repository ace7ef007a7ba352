/**
 * `bun run bench`: saga throughput and latency per topology, measured side by side in one run,
 * printed as figures and as ratios to the single-process PGlite shop; then the idle CPU of the
 * split deployment. Figures vary with the machine; compare the ratios.
 */
import { call, getJson } from "../test/support/http";
import { startPostgresCluster } from "../test/support/postgres-cluster";
import { createDatabase, type ShopTarget, startInProcess } from "../test/support/shop-target";
import { startSplitShop } from "../test/support/split-shop";
import { measureIdleCpu } from "./idle-cpu";

const ORDERS = Number(process.env.BENCH_ORDERS ?? 300);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);

interface Result {
  name: string;
  ordersPerSecond: number;
  p50: number;
  p95: number;
}

/** Places ORDERS orders, CONCURRENCY at a time, each timed from POST until it is final. */
async function run(name: string, t: ShopTarget): Promise<Result> {
  const users = Array.from({ length: CONCURRENCY }, (_, i) => 500_000 + i);
  for (const u of users) await call(t.urls.wallet, "POST", `/wallets/${u}/deposits`, { amount_cents: 100_000_000 });
  for (let p = 1; p <= 20; p++) await call(t.urls.storage, "POST", `/stock/${p}/receipts`, { quantity: 1_000_000 });
  const latencies: number[] = [];
  let next = 0;
  const worker = async (w: number) => {
    while (next < ORDERS) {
      const i = next++;
      const started = performance.now();
      const r = await call(t.urls.registry, "POST", "/orders", { user_id: users[w], items: [{ product_id: 1 + (i % 20), quantity: 1 }] });
      if (r.status !== 201) throw new Error(`order ${i}: ${r.status}`);
      for (;;) {
        const o = await getJson(t.urls.registry, `/orders/${r.body.id}`);
        if (o.status === "completed") break;
        if (o.status === "rejected") throw new Error(`order ${i} rejected: ${o.reason}`);
        await Bun.sleep(10);
      }
      latencies.push(performance.now() - started);
    }
  };
  const started = performance.now();
  await Promise.all(users.map((_, w) => worker(w)));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return { name, ordersPerSecond: ORDERS / seconds, p50: pct(0.5), p95: pct(0.95) };
}

async function measure(name: string, start: () => Promise<ShopTarget>): Promise<Result> {
  const t = await start();
  try {
    return await run(name, t);
  } finally {
    await t.stop();
  }
}

const cluster = await startPostgresCluster({ name: "bench" });
const results: Result[] = [];
try {
  results.push(await measure("one process, PGlite", () => startInProcess()));
  results.push(await measure("one process, PostgreSQL", async () => startInProcess({ DATABASE_URL: await createDatabase(cluster.url) })));
  results.push(await measure("three processes, Kafka", () => startSplitShop()));
} finally {
  await cluster.stop();
}

const base = results[0] as Result;
console.log(`\nsaga: ${ORDERS} orders, ${CONCURRENCY} at a time, POST until completed`);
console.log("(Kafka here is librdkafka's mock broker with 200 ms fetch waits: it holds each fetch for the full wait)");
for (const r of results) {
  console.log(
    `${r.name.padEnd(26)} ${r.ordersPerSecond.toFixed(1).padStart(7)} orders/s (x${(r.ordersPerSecond / base.ordersPerSecond).toFixed(2)})` +
      `  p50 ${r.p50.toFixed(1)} ms (x${(r.p50 / base.p50).toFixed(2)})  p95 ${r.p95.toFixed(1)} ms`,
  );
}
const idle = await measureIdleCpu();
console.log("\nidle, three processes over Kafka (goal: under 2% of a core each):");
for (const [name, pct] of Object.entries(idle)) console.log(`${name.padEnd(9)} ${pct.toFixed(2)}% of a core`);
