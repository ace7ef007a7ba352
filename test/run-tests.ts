/**
 * The test suite: installs missing Debian prerequisites, runs `bun test` with a JUnit report,
 * then prints one closing line `N passed, N failed` read from that report.
 * `--quick` (`bun run test:quick`) is the inner loop: every test file except those in SLOW.
 * Other arguments go to `bun test`.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

/**
 * The files `--quick` leaves out, and why: several processes, injected faults, the executable,
 * Chromium, or load held for a while. CI and `bun run test` run them all.
 */
const SLOW: Record<string, string> = {
  "test/binary.test.ts": "builds the executable and runs it",
  "test/compose-local.test.ts": "docker-compose.yml as processes: PostgreSQL, the broker, nginx, three services",
  "test/crash.test.ts": "kill -9 under load, twenty rounds",
  "test/durability.test.ts": "two shop processes under strace",
  "test/faults-saga.test.ts": "three processes; a participant down past the deadline, forged records",
  "test/faults-split.test.ts": "three processes under a storm of orders: kill -9, PostgreSQL and the broker down",
  "test/fuzz.test.ts": "thousands of generated requests per service against a shop process",
  "test/kafka-topics.test.ts": "three processes and kcat against the broker",
  "test/lifecycle.test.ts": "starts and signals shop processes, waits for a saga deadline",
  "test/live-backpressure.test.ts": "fills the kernel's socket buffers of clients that never read",
  "test/live-split.test.ts": "three processes",
  "test/logging.test.ts": "one shop process and three more, to read their log lines",
  "test/page.test.ts": "Chromium",
  "test/readiness.test.ts": "three processes; kill -9 and restart, a consumer crashing for good",
  "test/redrive.test.ts": "three processes for the redrive of a transient fault",
  "test/replicas.test.ts": "three processes plus second copies of wallet and storage",
  "test/replicas-background.test.ts": "several database sessions per module and a kill -9 of a relay process",
  "test/signing.test.ts": "three processes; a key rotation on disk",
  "test/rolling-upgrade.test.ts": "an old build from git history and the new one in one consumer group, under load",
  "test/simulate.test.ts": "the fault simulator over a list of seeds",
  "test/support/support.test.ts": "the harness itself (PostgreSQL cluster, Kafka mock), not the shop",
  "test/start-errors.test.ts": "shop processes that fail to start, and two first starts of the embedded database stopped half-way",
  "test/swagger-ui.test.ts": "Chromium",
  "test/tracing-split.test.ts": "three processes exporting spans to an in-test collector, then restarted without it",
};

const root = join(import.meta.dir, "..");
const args = process.argv.slice(2);
const quick = args.includes("--quick");
// A report of its own, so that a quick run never clobbers the whole suite's.
const report = join(root, ".tmp", quick ? "junit-quick.xml" : "junit.xml");
mkdirSync(join(root, ".tmp"), { recursive: true });
rmSync(report, { force: true });

/** The test files of the quick run, as paths `bun test` takes literally; fails on a SLOW entry that names no file. */
function quickFiles(): string[] {
  const stale = Object.keys(SLOW).filter((f) => !existsSync(join(root, f)));
  if (stale.length > 0) {
    console.log(`test/run-tests.ts: SLOW names files that do not exist: ${stale.join(", ")}\n\n0 passed, 1 failed`);
    process.exit(1);
  }
  const dirs = readdirSync(root, { withFileTypes: true }).filter(
    (d) => d.isDirectory() && d.name !== "node_modules" && !d.name.startsWith("."),
  );
  const all = dirs.flatMap((d) => [...new Bun.Glob(`${d.name}/**/*.test.ts`).scanSync({ cwd: root })]);
  const files = all.filter((f) => !(f in SLOW)).sort();
  console.log(`quick: ${files.length} test files; ${Object.keys(SLOW).length} slow ones left out (SLOW in test/run-tests.ts)`);
  return files.map((f) => `./${f}`);
}
const selection = quick ? quickFiles() : [];

// Debian packages the suite uses (PostgreSQL, librdkafka, kcat, gcc, Chromium), installed if missing.
const prerequisites = Bun.spawnSync(["bash", join(root, "scripts", "test-prerequisites.sh")], {
  stdout: "inherit",
  stderr: "inherit",
});
if (prerequisites.exitCode !== 0) {
  console.log("\n0 passed, 1 failed");
  process.exit(1);
}

const run = Bun.spawnSync(
  [
    "bun",
    "test",
    "--timeout=120000",
    "--reporter=junit",
    `--reporter-outfile=${report}`,
    ...args.filter((a) => a !== "--quick"),
    ...selection,
  ],
  { cwd: root, stdout: "inherit", stderr: "inherit", env: process.env },
);

let xml = "";
try {
  xml = readFileSync(report, "utf8");
} catch {
  console.log("no JUnit report was written");
}
const cases = [...xml.matchAll(/<testcase\b[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g)];
const failed = cases.filter((m) => /<(failure|error)\b/.test(m[2] ?? "")).length;
const skipped = cases.filter((m) => /<skipped\b/.test(m[2] ?? "")).length;
const passed = cases.length - failed - skipped;
const exitCode = run.exitCode ?? 1;
// A crash outside any test case still fails the run.
const failedTotal = failed === 0 && exitCode !== 0 ? 1 : failed;
console.log(`\n${passed} passed, ${failedTotal} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(exitCode !== 0 || failedTotal > 0 || cases.length === 0 ? 1 : 0);
