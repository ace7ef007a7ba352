/**
 * The whole test suite: installs missing Debian prerequisites, runs `bun test` with a JUnit
 * report, then prints one closing line `N passed, N failed` read from that report.
 * Extra arguments go to `bun test`.
 */
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dir, "..");
const report = join(root, ".tmp", "junit.xml");
mkdirSync(join(root, ".tmp"), { recursive: true });
rmSync(report, { force: true });

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
  ["bun", "test", "--timeout=120000", "--reporter=junit", `--reporter-outfile=${report}`, ...process.argv.slice(2)],
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
