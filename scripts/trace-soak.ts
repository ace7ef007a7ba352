/**
 * `bun run trace-soak`: tracing to a collector that is down costs a bounded queue. Runs the shop
 * (one process, PGlite in memory) under a steady open-loop order load, once with tracing off
 * and once with every span exported to a dead endpoint, and prints its RSS every 30 s side by
 * side, with the spans the exporter dropped and the exports in flight (from its /metrics).
 *
 *   bun run trace-soak                       # ten minutes each, 20 orders/s, a closed port
 *   TRACE_SOAK_SECONDS=120 bun run trace-soak --hang   # a collector that accepts and never answers
 *
 * TRACE_SOAK_SECONDS (600), TRACE_SOAK_RATE (20 orders/s), TRACE_SOAK_SAMPLE_SECONDS (30);
 * `--closed` (default: connections refused) or `--hang` (a listener that never answers);
 * `--only-traced` skips the tracing-off run. Progress goes to stderr, the table to stdout.
 */
import { createServer, type Server, type Socket } from "node:net";
import { cleanUp, defer, installSignalHandlers, trackPid, untrackPid } from "../bench/cleanup";
import { benchUsers, postAtRate, stockUp } from "../bench/load";
import { OrderTracker } from "../bench/order-tracker";
import { rssMb } from "../bench/proc-stats";
import { renderTable } from "../bench/table";
import { startShopProcess } from "../test/support/process";
import { processEnv } from "../test/support/shop-target";

const START_TIMEOUT_MS = 600_000;

const num = (name: string, fallback: number) => {
  const raw = process.env[name];
  const n = raw ? Number(raw) : fallback;
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}: expected a positive number, got ${JSON.stringify(raw)}`);
  return n;
};
const seconds = num("TRACE_SOAK_SECONDS", 600);
const rate = num("TRACE_SOAK_RATE", 20);
const sampleSeconds = num("TRACE_SOAK_SAMPLE_SECONDS", 30);
const args = Bun.argv.slice(2);
const kind = args.includes("--hang") ? "hang" : "closed";
const onlyTraced = args.includes("--only-traced");

/** A dead collector: a port nothing listens on (refused), or a listener that takes connections and never answers. */
async function deadEndpoint(how: "closed" | "hang"): Promise<string> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  if (how === "closed") await new Promise<void>((resolve) => server.close(() => resolve()));
  else
    defer("stop the silent collector", () => {
      for (const s of sockets) s.destroy();
      server.close();
    });
  return `http://127.0.0.1:${port}`;
}

/** One sample of /metrics: the samples named, summed over their labels (none when the busy shop does not answer within 5 s). */
async function metrics(base: string, names: string[]): Promise<Record<string, number>> {
  const text = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(5000) })
    .then((r) => r.text())
    .catch(() => "");
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const name = /^([a-z_]+)/.exec(line)?.[1];
    if (name && names.includes(name)) out[name] = (out[name] ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return out;
}

interface Row {
  t: number;
  rss: number;
  dropped?: number;
  inFlight?: number;
  queued?: number;
}

/** One run: the shop under load for `seconds`, sampled every `sampleSeconds`. */
async function run(label: string, env: Record<string, string>): Promise<{ rows: Row[]; orders: number }> {
  // Started here rather than by the bench's launcher: on a busy machine the start can take longer than its 90 s.
  const proc = await startShopProcess(
    ["--modules", "registry,wallet,storage"],
    { ...processEnv(), DATA_DIR: ":memory:", ...env },
    3,
    START_TIMEOUT_MS,
    {
      maxLogLines: 1000,
    },
  );
  trackPid(proc.proc.pid);
  defer("stop the shop", () => proc.stop().then(() => untrackPid(proc.proc.pid)));
  const pid = proc.proc.pid;
  const shop = {
    urls: { registry: proc.urls.registry ?? "", wallet: proc.urls.wallet ?? "", storage: proc.urls.storage ?? "" },
    pids: { shop: pid },
  };
  const users = benchUsers(20);
  await stockUp(shop.urls, users);
  const tracker = new OrderTracker(shop.urls.registry, 1000, 20);
  tracker.start();
  defer("stop the order poller", () => tracker.stop());
  console.error(`[trace-soak] ${label}: ${rate} orders/s for ${seconds} s, pid ${pid}`);
  const rows: Row[] = [{ t: 0, rss: rssMb(pid) }];
  const start = performance.now();
  const posting = postAtRate(shop.urls, tracker, shop.pids, users, rate, seconds);
  for (let k = 1; k * sampleSeconds <= seconds + 1e-9; k++) {
    await Bun.sleep(Math.max(0, start + k * sampleSeconds * 1000 - performance.now()));
    // RSS first, at the sample's time; then the exporter's figures.
    const t = (performance.now() - start) / 1000;
    const rss = rssMb(pid);
    const m = await metrics(shop.urls.registry, [
      "shop_trace_spans_dropped_total",
      "shop_trace_exports_in_flight",
      "shop_trace_spans_queued",
    ]);
    const row: Row = {
      t,
      rss,
      dropped: m.shop_trace_spans_dropped_total,
      inFlight: m.shop_trace_exports_in_flight,
      queued: m.shop_trace_spans_queued,
    };
    rows.push(row);
    console.error(
      `[trace-soak] ${label} t=${row.t.toFixed(0)} s: RSS ${row.rss.toFixed(0)} MB, dropped ${row.dropped ?? "-"}, in flight ${row.inFlight ?? "-"}, queued ${row.queued ?? "-"}`,
    );
  }
  const posted = await posting;
  await tracker.stop();
  await proc.stop();
  untrackPid(pid);
  return { rows, orders: posted.accepted.length };
}

installSignalHandlers();
let exitCode = 0;
try {
  const endpoint = await deadEndpoint(kind);
  const traced = await run(`traced to a ${kind === "hang" ? "silent" : "closed"} endpoint`, {
    OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
    OTEL_TRACES_SAMPLER: "parentbased_always_on",
  });
  const off = onlyTraced ? null : await run("tracing off", {});
  const header = [
    "t s",
    "RSS MB traced",
    "spans dropped",
    "exports in flight",
    "spans queued",
    ...(off ? ["t s (off)", "RSS MB off"] : []),
  ];
  const rows = traced.rows.map((r, i) => [
    r.t.toFixed(0),
    r.rss.toFixed(0),
    String(r.dropped ?? "-"),
    String(r.inFlight ?? "-"),
    String(r.queued ?? "-"),
    ...(off ? [off.rows[i]?.t.toFixed(0) ?? "-", off.rows[i]?.rss.toFixed(0) ?? "-"] : []),
  ]);
  console.log(
    `\ntrace-soak: one process, PGlite in memory, ${rate} orders/s open loop for ${seconds} s; collector ${kind === "hang" ? "accepting and never answering" : "refusing connections"}\n`,
  );
  console.log(renderTable([header, ...rows]));
  console.log(`\norders accepted: traced ${traced.orders}${off ? `, off ${off.orders}` : ""}`);
} catch (err) {
  console.error(`trace-soak failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  exitCode = 1;
} finally {
  await cleanUp();
}
process.exit(exitCode);
