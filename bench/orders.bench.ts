/**
 * `bun run bench`: one run, one table. For each topology (one process on PGlite, one process
 * on PostgreSQL, the same with tracing on, three processes over Kafka; opt-in, kafka-2x: five,
 * two wallets and two storages), started as child processes on fresh data:
 * orders accepted/s and final/s at saturation, POST-to-final p50/p99 there and at half that
 * rate (open-loop arrivals), GET /products req/s, start-to-healthy time (fresh and existing
 * data), peak RSS and idle CPU per process; beside them the ceilings on this machine in the
 * same run: pgbench TPC-B on the same PostgreSQL cluster and a bare Bun.serve under wrk.
 * Then per topology the cost curve (bench/curve.ts: one order at a time, 10/s, 20/s, 0.5 and
 * 0.8 of saturation, saturation), the accounting of one order from the shop's own counters
 * against the CPU of each kind of work measured alone (bench/micro.ts), and, with
 * BENCH_BASELINE_DIR or BENCH_BASELINE_REV, the same on another checkout and the ratios; with
 * BENCH_PUBLIC_SAGA_DIR, the small public saga issue 23 compares the Kafka mode with
 * (bench/public-saga.ts), else a line saying it was skipped and how to run it.
 * Settings come from BENCH_* variables (see bench/settings.ts); progress goes to stderr.
 */
import { cpus, loadavg } from "node:os";
import { startPostgresCluster } from "../test/support/postgres-cluster";
import { prepareBaseline } from "./baseline";
import { cleanUp, defer, installSignalHandlers } from "./cleanup";
import { accountingTable, comparisonTable, curveLegend, curveTable } from "./curve-report";
import { startBareServer, wrkRequestsPerSecond } from "./http-floor";
import { measureIdleCpu } from "./idle-cpu";
import { type ModeResult, measureMode } from "./measure-mode";
import { describeUnits } from "./micro";
import { runPgbench } from "./pgbench";
import { ensurePrerequisites } from "./prerequisites";
import { findPostmaster } from "./proc-stats";
import { installPublicSaga, measurePublicSaga, PUBLIC_SAGA_LIGHT_CLIENTS, type PublicSagaResult, publicSagaReport } from "./public-saga";
import { reportLegend, reportNotes, reportTable } from "./report";
import { describeSettings, readSettings } from "./settings";

const started = performance.now();
const loadBefore = loadavg()[0] ?? 0;
installSignalHandlers();
let exitCode = 0;
try {
  const settings = readSettings();
  ensurePrerequisites();
  console.error(`bench settings:\n${describeSettings(settings)}\n`);

  const clusterName = `bench-${process.pid}`;
  const cluster = await startPostgresCluster({ name: clusterName });
  defer("stop the PostgreSQL cluster", () => cluster.stop());
  const postmaster = findPostmaster(clusterName);
  console.error(`[pgbench] -i -s ${settings.pgbenchScale}, then ${settings.pgbenchSeconds} s`);
  const pgbench = await runPgbench(cluster, postmaster, settings);
  console.error(
    `[pgbench] ${pgbench.tps.toFixed(0)} tps, ${pgbench.cpuMsPerTransaction.toFixed(3)} ms of CPU per transaction (init ${pgbench.initSeconds.toFixed(1)} s)`,
  );

  // The public saga on the same cluster and the same kind of broker with the same load, before
  // and after ours; and after ours with a light load too, its best (bench/public-saga.ts).
  const publicSaga = settings.publicSagaDir ? await installPublicSaga(settings.publicSagaDir) : null;
  const theirs: PublicSagaResult[] = [];
  if (publicSaga) theirs.push(await measurePublicSaga(publicSaga, "before ours", settings.clients, cluster, postmaster, settings));

  const baselineDir = await prepareBaseline(settings);
  const results: ModeResult[] = [];
  const baseline: ModeResult[] = [];
  for (const mode of settings.modes) {
    results.push(await measureMode(mode, cluster, postmaster, settings));
    if (baselineDir) baseline.push(await measureMode(mode, cluster, postmaster, settings, baselineDir));
  }

  if (publicSaga) {
    theirs.push(await measurePublicSaga(publicSaga, "after ours", settings.clients, cluster, postmaster, settings));
    theirs.push(await measurePublicSaga(publicSaga, "after ours", PUBLIC_SAGA_LIGHT_CLIENTS, cluster, postmaster, settings));
  }

  const body = results[0]?.productsBody ?? '{"products":[]}';
  const bare = await startBareServer(body);
  console.error(`[bare Bun.serve] wrk for ${settings.wrkSeconds} s`);
  const bareRps = await wrkRequestsPerSecond(`${bare.url}/products`, settings);
  await bare.stop();

  // The table's Kafka idle figure is at the short bench fetch wait; a real deployment keeps the default.
  const kafkaIdle = settings.modes.some((m) => m.startsWith("kafka")) ? await measureIdleCpu() : null;

  const minutes = (performance.now() - started) / 60_000;
  console.log(`\nbench settings:\n${describeSettings(settings)}`);
  console.log(
    `machine: ${cpus().length} cores (${cpus()[0]?.model ?? "?"}), bun ${Bun.version}; PostgreSQL cluster with fsync=off, synchronous_commit=off`,
  );
  console.log(`1-minute load average before the bench: ${loadBefore.toFixed(1)} (other work on the machine competes with it)\n`);
  console.log(reportTable(results, { pgbench, bareRps }, settings));
  console.log(`\n${reportLegend()}`);
  for (const r of [...results, ...baseline]) if (r.curve.length > 2) console.log(`\ncost curve, ${curveTable(r, pgbench)}`);
  for (const r of [...results, ...baseline]) if (r.curve.length > 2) console.log(`\n${accountingTable(r)}`);
  for (const r of results) if (r.units) console.log(`unit costs, ${r.mode}: ${describeUnits(r.units)}`);
  console.log(`\n${curveLegend()}`);
  if (baselineDir)
    console.log(
      `\nbefore/after, same run: this checkout against ${settings.baselineDir ?? settings.baselineRev}\n${comparisonTable(results, baseline)}`,
    );
  if (kafkaIdle) {
    const figures = Object.entries(kafkaIdle)
      .map(([name, pct]) => `${name} ${pct.toFixed(2)}%`)
      .join(" · ");
    console.log(`\nidle CPU, 3 processes over Kafka with the default fetch wait (5 s) and outbox poll (10 s): ${figures} of a core`);
  }
  const kafka = results.find((r) => r.mode === "kafka");
  const ours = kafka ? { finalPerSecond: kafka.saturation.finalPerSecond, cpuMsPerOrder: kafka.saturation.cpuMsPerOrder } : null;
  console.log(`\n${publicSagaReport(publicSaga, theirs, ours, pgbench.tps, settings)}`);
  const notes = reportNotes([...results, ...baseline]);
  if (notes.length) console.log(`\nnotes:\n${notes.map((n) => `- ${n}`).join("\n")}`);
  console.log(`\nbench took ${minutes.toFixed(1)} min`);
} catch (err) {
  console.error(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  exitCode = 1;
} finally {
  await cleanUp();
}
process.exit(exitCode);
