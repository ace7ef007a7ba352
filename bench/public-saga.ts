/**
 * Issue 23's yardstick for the split deployment: a small public saga
 * (github.com/vikram-chauhan-270192/saga-kafka-demo: three Node services, Express + kafkajs + pg,
 * an outbox per service) run on the same mock broker build, PostgreSQL cluster and saturation load
 * as our Kafka mode, in the same run. Its code is not part of this repository: BENCH_PUBLIC_SAGA_DIR
 * names a checkout; each service directory is copied to a temp dir and `npm ci` installs its
 * locked dependencies there. Nothing in its files is changed. Two things are added at run time:
 *
 * - A preload (`node --require`) that wraps kafkajs's `Kafka.prototype.consumer` to pass
 *   `maxWaitTimeInMs` = our fetch wait (BENCH_KAFKA_FETCH_MAX_WAIT_MS): its code leaves kafkajs's
 *   default of 5 s, which the mock broker holds every fetch for.
 * - Its `orders` table is created before it starts, with its own columns as it declares them
 *   (its `CREATE TABLE IF NOT EXISTS` then keeps ours) plus two the bench reads: `bench_created_ms`
 *   (set on insert) and `bench_final_ms`, set by a trigger the first time the status becomes
 *   CONFIRMED or CANCELLED, the two states its order service ends a saga in (payment.failed and
 *   inventory.failed cancel, inventory.reserved confirms; PAID is a step on the way). "Final" thus
 *   means what it means for ours (completed or rejected): the saga has reached its last state.
 *
 * Its services create their tables on start; its topics have one partition each, as its
 * docker-compose creates them. Its outbox publisher sends at most 50 rows every 1.5 s per service,
 * so its saturation is about 33 orders/s whatever the machine; it is measured anyway, not assumed,
 * with our load (BENCH_CLIENTS) and with a light one (PUBLIC_SAGA_LIGHT_CLIENTS).
 */
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { basename, join } from "node:path";
import postgres from "postgres";
import { startKafkaMock } from "../test/support/kafka-mock";
import { findFreePort, type PostgresCluster } from "../test/support/postgres-cluster";
import { createDatabase } from "../test/support/shop-target";
import { cleanUp, defer, depth, trackPid, untrackPid } from "./cleanup";
import { percentile } from "./phase";
import { cpuSince, cpuSnapshot, findChild, machineSince, machineSnapshot, type Pids } from "./proc-stats";
import type { BenchSettings } from "./settings";
import { num, perProcess, ratio } from "./table";

/** Where to get it, for messages. */
const PUBLIC_SAGA_REPO = "https://github.com/vikram-chauhan-270192/saga-kafka-demo";

const SERVICES = ["order", "payment", "inventory"] as const;
type Service = (typeof SERVICES)[number];
const TOPICS = ["order.created", "payment.charged", "payment.failed", "inventory.reserved", "inventory.failed"];
const WARM_UP_TIMEOUT_MS = 120_000;
const STOP_GRACE_MS = 5_000;

/**
 * A light load for its best final/s: with this few posting clients its POSTs leave its order
 * service's pg pool (10 connections) free enough for its outbox publisher, whose one UPDATE per
 * row queues behind them; with 32 it falls far below its timer's cap. Measured beside the
 * same-load figure so that the ratio is not flattered by that collapse.
 */
export const PUBLIC_SAGA_LIGHT_CLIENTS = 2;

/** Its figures at saturation, defined as ours are (bench/phase.ts). */
export interface PublicSagaResult {
  seconds: number;
  /** When in the run it was measured (before or after our modes), and with how many posting clients. */
  label: string;
  clients: number;
  /** 1-minute load average when its phase began. */
  loadBefore: number;
  accepted: number;
  acceptedPerSecond: number;
  /** Orders final (by its own status change, timed in the database) while posting went on, per second of posting. */
  finals: number;
  finalPerSecond: number;
  /** Final orders per second over the second half of the window only: its pipeline takes a few of its 1.5 s outbox rounds to fill. */
  secondHalfFinalPerSecond: number;
  confirmed: number;
  cancelled: number;
  /** Final orders whose status later went back to PAID (its order service applies events in arrival order). */
  regressed: number;
  /** From its created_at to the final status, of the orders final in the window, ms. */
  p50: number;
  p99: number;
  failures: Record<string, number>;
  /** % of a core per process (its three services, PostgreSQL, the broker) while posting. */
  cpu: Record<string, number>;
  /** CPU ms of all of them per order final in the window. */
  cpuMsPerOrder: number;
  /** % of a core the bench's own process and other programs used meanwhile. */
  loadCpu: number;
  otherCpu: number;
}

/** Throws unless `dir` looks like a checkout of the public saga and node and npm are on PATH. */
function checkPrerequisites(dir: string): void {
  for (const s of SERVICES) {
    for (const f of ["index.js", "package.json", "package-lock.json"]) {
      if (!existsSync(join(dir, `${s}-service`, f)))
        throw new Error(`BENCH_PUBLIC_SAGA_DIR=${dir}: no ${s}-service/${f} (expected a checkout of ${PUBLIC_SAGA_REPO})`);
    }
  }
  for (const tool of ["node", "npm"])
    if (!Bun.which(tool)) throw new Error(`the public saga comparison needs ${tool} on PATH (Debian: apt-get install nodejs npm)`);
}

/** Node preload: every kafkajs consumer gets maxWaitTimeInMs from BENCH_FETCH_MAX_WAIT_MS. */
const PRELOAD = `// Written by the shop's bench (bench/public-saga.ts): the services' consumers get the bench's fetch wait.
const { createRequire } = require("node:module");
const { Kafka } = createRequire(process.cwd() + "/")("kafkajs");
const consumer = Kafka.prototype.consumer;
Kafka.prototype.consumer = function (options) {
  return consumer.call(this, { ...options, maxWaitTimeInMs: Number(process.env.BENCH_FETCH_MAX_WAIT_MS) });
};
`;

/**
 * Its orders table as its order service declares it, plus the bench's two timing columns and
 * the trigger that sets the final one (clock_timestamp: when the row changed, not when its
 * transaction began).
 */
const ORDERS_SCHEMA = `
CREATE TABLE orders (
  order_id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  total_amount INT NOT NULL,
  status TEXT NOT NULL,
  created_at TIMESTAMP DEFAULT NOW(),
  bench_created_ms DOUBLE PRECISION DEFAULT extract(epoch from clock_timestamp()) * 1000,
  bench_final_ms DOUBLE PRECISION
);
CREATE FUNCTION bench_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status IN ('CONFIRMED', 'CANCELLED') AND NEW.bench_final_ms IS NULL THEN
    NEW.bench_final_ms := extract(epoch from clock_timestamp()) * 1000;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER bench_final BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION bench_final();
`;

/** A copy of the public saga with its dependencies installed, ready to run. */
export interface PublicSagaInstall {
  /** The checkout it came from, its git revision ("?" when not a git checkout), `node --version`. */
  dir: string;
  revision: string;
  node: string;
  /** The temp dir holding the three service copies and the preload (removed by the bench's cleanup). */
  work: string;
}

/** Copies each service of the checkout `dir` to a temp dir and runs `npm ci` there; the temp dir is removed at the bench's cleanup. */
export async function installPublicSaga(dir: string): Promise<PublicSagaInstall> {
  checkPrerequisites(dir);
  const work = mkdtempSync(join(tmpdir(), "bench-public-saga-"));
  defer(`remove ${work}`, () => rmSync(work, { recursive: true, force: true }));
  for (const svc of SERVICES) {
    const to = join(work, `${svc}-service`);
    cpSync(join(dir, `${svc}-service`), to, { recursive: true, filter: (src) => basename(src) !== "node_modules" });
    console.error(`[public saga] npm ci in a copy of ${svc}-service`);
    await run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], to);
  }
  writeFileSync(join(work, "bench-preload.cjs"), PRELOAD);
  return {
    dir,
    work,
    node: Bun.spawnSync(["node", "--version"]).stdout.toString().trim(),
    revision: Bun.spawnSync(["git", "-C", dir, "rev-parse", "--short", "HEAD"], { stderr: "ignore" }).stdout.toString().trim() || "?",
  };
}

/**
 * Runs the installed public saga on a fresh broker and fresh databases, warms it up, drives it
 * with `clients` posting loops for `seconds`, and stops everything it started.
 */
export async function measurePublicSaga(
  install: PublicSagaInstall,
  label: string,
  clients: number,
  cluster: PostgresCluster,
  postmaster: number,
  s: BenchSettings,
): Promise<PublicSagaResult> {
  const say = (msg: string) => console.error(`[public saga, ${label}] ${msg}`);
  const { work } = install;
  const preload = join(work, "bench-preload.cjs");
  const mark = depth();
  try {
    const mock = await startKafkaMock(TOPICS.map((t) => `${t}:1`));
    defer("stop the public saga's Kafka mock broker", () => mock.stop());
    const databases = Object.fromEntries(
      await Promise.all(SERVICES.map(async (svc) => [svc, await createDatabase(cluster.url)] as const)),
    ) as Record<Service, string>;
    const orders = postgres(databases.order, { max: 2, onnotice: () => {} });
    defer("close the connection to the public saga's order database", () => orders.end());
    await orders.unsafe(ORDERS_SCHEMA);

    const ports = { order: await findFreePort(), payment: await findFreePort(), inventory: await findFreePort() };
    const pids: Pids = {};
    const logs: string[] = [];
    for (const svc of SERVICES) {
      const db = new URL(databases[svc]);
      const env = {
        PATH: process.env.PATH ?? "",
        PORT: String(ports[svc]),
        PGHOST: db.hostname,
        PGPORT: db.port,
        PGUSER: decodeURIComponent(db.username),
        PGDATABASE: db.pathname.slice(1),
        KAFKA_BROKER: mock.brokers,
        KAFKAJS_NO_PARTITIONER_WARNING: "1",
        BENCH_FETCH_MAX_WAIT_MS: String(s.kafkaFetchMaxWaitMs),
      };
      const proc = Bun.spawn(["node", "--require", preload, "index.js"], {
        cwd: join(work, `${svc}-service`),
        env,
        stdout: "pipe",
        stderr: "pipe",
      });
      trackPid(proc.pid);
      pids[svc] = proc.pid;
      void keepTail(proc.stdout, svc, logs);
      void keepTail(proc.stderr, svc, logs);
      defer(`stop the public saga's ${svc} service`, async () => {
        proc.kill("SIGTERM");
        const timer = setTimeout(() => proc.kill("SIGKILL"), STOP_GRACE_MS);
        await proc.exited;
        clearTimeout(timer);
        untrackPid(proc.pid);
      });
    }
    const base = `http://127.0.0.1:${ports.order}`;
    const watched: Pids = { ...pids, postgres: postmaster, kafka: findChild(process.pid, "kafka-mock/launcher") };
    try {
      await warmUp(base, orders, say);
    } catch (err) {
      throw new Error(`${err instanceof Error ? err.message : String(err)}\n--- its output (tail) ---\n${logs.slice(-40).join("\n")}`);
    }

    const loadBefore = loadavg()[0] ?? 0;
    say(`saturation: ${clients} clients for ${s.seconds} s (1-minute load ${loadBefore.toFixed(1)})`);
    const cpuBefore = cpuSnapshot(watched);
    const machineBefore = machineSnapshot();
    const ownBefore = process.cpuUsage();
    const startedAt = performance.now();
    const until = startedAt + s.seconds * 1000;
    const accepted: string[] = [];
    const failures: Record<string, number> = {};
    await Promise.all(
      Array.from({ length: clients }, async (_, client) => {
        while (performance.now() < until) {
          const outcome = await postOrder(base, `bench-${client}`);
          if (outcome.id !== null) accepted.push(outcome.id);
          else failures[outcome.failure] = (failures[outcome.failure] ?? 0) + 1;
        }
      }),
    );
    const endedAt = performance.now();
    const cpu = cpuSince(cpuBefore, watched);
    const machineCpu = machineSince(machineBefore);
    const own = process.cpuUsage(ownBefore);
    const seconds = (endedAt - startedAt) / 1000;
    const windowStartMs = performance.timeOrigin + startedAt;
    const windowEndMs = performance.timeOrigin + endedAt;
    // A status set before the window closed is committed a moment later at most.
    await Bun.sleep(500);
    const rows = await orders<{ order_id: string; status: string; created: number; final: number }[]>`
      select order_id, status, bench_created_ms as created, bench_final_ms as final
      from orders where bench_final_ms is not null and bench_final_ms <= ${windowEndMs}`;
    const mine = new Set(accepted);
    const finals = rows.filter((r) => mine.has(r.order_id));
    const shopCpu = Object.values(cpu).reduce((a, b) => a + b, 0);
    const loadCpu = ((own.user + own.system) / 1000 / (endedAt - startedAt)) * 100;
    const midMs = (windowStartMs + windowEndMs) / 2;
    const latencies = finals.map((r) => r.final - r.created).sort((a, b) => a - b);
    const result: PublicSagaResult = {
      label,
      clients,
      seconds,
      loadBefore,
      accepted: accepted.length,
      acceptedPerSecond: accepted.length / seconds,
      finals: finals.length,
      finalPerSecond: finals.length / seconds,
      secondHalfFinalPerSecond: finals.filter((r) => r.final > midMs).length / (seconds / 2),
      confirmed: finals.filter((r) => r.status === "CONFIRMED").length,
      cancelled: finals.filter((r) => r.status === "CANCELLED").length,
      regressed: finals.filter((r) => r.status !== "CONFIRMED" && r.status !== "CANCELLED").length,
      p50: percentile(latencies, 0.5),
      p99: percentile(latencies, 0.99),
      failures,
      cpu,
      cpuMsPerOrder: finals.length > 0 ? (shopCpu * 10 * seconds) / finals.length : Number.NaN,
      loadCpu,
      otherCpu: Math.max(0, machineCpu - shopCpu - loadCpu),
    };
    say(
      `saturation: ${result.acceptedPerSecond.toFixed(0)} accepted/s, ${result.finalPerSecond.toFixed(1)} final/s (second half ${result.secondHalfFinalPerSecond.toFixed(1)}/s)`,
    );
    return result;
  } finally {
    await cleanUp(mark);
  }
}

/**
 * Posts an order a second until one is CONFIRMED: that took all three consumers (they start at
 * the newest offset once joined, so an order posted before they joined is never handled).
 */
async function warmUp(base: string, orders: postgres.Sql, say: (msg: string) => void): Promise<void> {
  const started = performance.now();
  let lastError = "no answer";
  while (performance.now() - started < WARM_UP_TIMEOUT_MS) {
    const outcome = await postOrder(base, "bench-warm-up");
    if (outcome.id === null) lastError = outcome.failure;
    const [row] = await orders`select count(*)::int as n from orders where status = 'CONFIRMED'`;
    if ((row?.n ?? 0) > 0) {
      say(`warm: an order confirmed after ${((performance.now() - started) / 1000).toFixed(1)} s`);
      return;
    }
    await Bun.sleep(1000);
  }
  throw new Error(`the public saga confirmed no order within ${WARM_UP_TIMEOUT_MS / 1000} s (last POST: ${lastError})`);
}

/** Its POST /orders as its README shows it; the id on 201, else the status (or "error"). */
async function postOrder(base: string, userId: string): Promise<{ id: string; failure?: undefined } | { id: null; failure: string }> {
  try {
    const res = await fetch(`${base}/orders`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ userId, totalAmount: 500 }),
    });
    const text = await res.text();
    if (res.status === 201) return { id: (JSON.parse(text) as { orderId: string }).orderId };
    return { id: null, failure: String(res.status) };
  } catch {
    return { id: null, failure: "error" };
  }
}

/** Keeps the last lines of a child's output, for the error message if it does not start. */
async function keepTail(stream: ReadableStream<Uint8Array>, name: string, into: string[]): Promise<void> {
  const decoder = new TextDecoder();
  for await (const chunk of stream) {
    for (const line of decoder.decode(chunk, { stream: true }).split("\n")) if (line.trim()) into.push(`${name}: ${line}`);
    if (into.length > 200) into.splice(0, into.length - 200);
  }
}

/** Runs a command to completion in `cwd`; throws with its output on a non-zero exit. */
async function run(cmd: string[], cwd: string): Promise<void> {
  const proc = Bun.spawn(cmd, { cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`\`${cmd.join(" ")}\` in ${cwd} exited with ${code}: ${(err.trim() || out.trim()).slice(-2000)}`);
}

/** Our Kafka mode's figures the comparison needs. */
export interface OursAtSaturation {
  finalPerSecond: number;
  cpuMsPerOrder: number;
}

/**
 * The comparison's lines: our Kafka mode's saturation against pgbench and against each run of
 * the public saga (before and after ours, so that a change of the machine's load in between
 * shows), with issue 23's targets; or why the public saga was not measured and how to measure it.
 */
export function publicSagaReport(
  install: PublicSagaInstall | null,
  theirs: PublicSagaResult[],
  ours: OursAtSaturation | null,
  pgbenchTps: number,
  s: BenchSettings,
): string {
  const lines = [
    "split deployment at saturation against issue 23's yardsticks (target: ≥ 0.1 × pgbench tps, ≥ 5 × the public saga's final/s):",
  ];
  if (ours === null) lines.push("- ours: the kafka mode was not measured in this run (BENCH_MODES)");
  else {
    lines.push(
      `- ours, 3 processes over Kafka: ${num(ours.finalPerSecond)} final/s = ${ratio(ours.finalPerSecond / pgbenchTps)} pgbench tps (${num(pgbenchTps)}); CPU per final order ${num(ours.cpuMsPerOrder)} ms`,
    );
  }
  if (!install) {
    lines.push(
      `- the public saga comparison was skipped: set BENCH_PUBLIC_SAGA_DIR to a checkout of ${PUBLIC_SAGA_REPO} (needs node and npm; npm ci fetches its locked dependencies into a temp dir)`,
    );
    return lines.join("\n");
  }
  lines.push(`- the public saga: ${PUBLIC_SAGA_REPO} at ${install.revision}, Node ${install.node}, fetch wait ${s.kafkaFetchMaxWaitMs} ms`);
  for (const t of theirs) {
    const failures =
      Object.entries(t.failures)
        .map(([k, n]) => `${k}: ${n}`)
        .join(", ") || "none";
    lines.push(
      `  ${t.label}, ${t.clients} clients (${num(t.seconds)} s, 1-minute load ${t.loadBefore.toFixed(1)} when it began): ${num(t.acceptedPerSecond)} orders accepted/s, ${num(t.finalPerSecond)} final/s (${t.confirmed} confirmed, ${t.cancelled} cancelled; over the window's second half ${num(t.secondHalfFinalPerSecond)}/s) = ${ratio(t.finalPerSecond / pgbenchTps)} pgbench tps`,
      `    created → final p50 / p99 ${num(t.p50)} / ${num(t.p99)} ms; CPU per final order ${num(t.cpuMsPerOrder)} ms (${perProcess(t.cpu)} % of a core while posting; bench ${num(t.loadCpu)} %, other programs ${num(t.otherCpu)} %); failed POSTs: ${failures}; of the final orders, ${t.regressed} later set back to PAID by a late payment.charged (counted as final here)`,
    );
    if (ours !== null) {
      lines.push(
        `    ours ÷ theirs: final/s ${ratio(ours.finalPerSecond / t.finalPerSecond)} (against their second half: ${ratio(ours.finalPerSecond / t.secondHalfFinalPerSecond)}); their CPU per final order ÷ ours: ${ratio(t.cpuMsPerOrder / ours.cpuMsPerOrder)}`,
      );
    }
  }
  const same = theirs.filter((t) => t.clients === s.clients);
  if (ours !== null && same.length > 0) {
    const best = Math.max(...theirs.map((t) => t.finalPerSecond));
    lines.push(
      `- ours ÷ theirs, issue 23's target ≥ ×5: ${ratio(ours.finalPerSecond / Math.max(...same.map((t) => t.finalPerSecond)))} at the same load (${s.clients} clients, their better run); ${ratio(ours.finalPerSecond / best)} against their best final/s at any load measured`,
    );
  }
  return lines.join("\n");
}
