/** Makes sure the Debian tools the bench drives are there, installing the missing ones when root. */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

/** Command (or file) the bench needs, and the Debian package that brings it. */
const NEEDED: { what: string; present: () => boolean; pkg: string }[] = [
  { what: "wrk", present: () => Bun.which("wrk") !== null, pkg: "wrk" },
  {
    what: "PostgreSQL server and pgbench",
    present: () => findPgBin("pgbench") !== null && findPgBin("initdb") !== null,
    pkg: "postgresql",
  },
  { what: "librdkafka headers", present: () => existsSync("/usr/include/librdkafka/rdkafka_mock.h"), pkg: "librdkafka-dev" },
  { what: "gcc", present: () => Bun.which("gcc") !== null, pkg: "gcc" },
];

/** Path of a PostgreSQL program: the newest /usr/lib/postgresql/N/bin first, then PATH. */
export function findPgBin(program: string): string | null {
  const base = "/usr/lib/postgresql";
  if (existsSync(base)) {
    const versions = readdirSync(base)
      .filter((v) => /^\d+$/.test(v) && existsSync(join(base, v, "bin", program)))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0] !== undefined) return join(base, versions[0], "bin", program);
  }
  return Bun.which(program);
}

/** Installs missing packages with apt-get (as root on Debian), or throws naming what to install. */
export function ensurePrerequisites(): void {
  const missing = NEEDED.filter((n) => !n.present());
  if (missing.length === 0) return;
  const pkgs = missing.map((m) => m.pkg);
  const what = missing.map((m) => m.what).join(", ");
  if (process.getuid?.() !== 0 || !Bun.which("apt-get")) {
    throw new Error(`the bench needs ${what}: install them (Debian: sudo apt-get install -y ${pkgs.join(" ")})`);
  }
  console.log(`installing ${what}: apt-get install -y ${pkgs.join(" ")}`);
  const apt = (args: string[]) =>
    Bun.spawnSync(["apt-get", ...args], { env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" }, stdout: "ignore", stderr: "pipe" });
  let result = apt(["install", "-y", "-qq", "--no-install-recommends", ...pkgs]);
  if (result.exitCode !== 0) {
    apt(["update", "-qq"]);
    result = apt(["install", "-y", "-qq", "--no-install-recommends", ...pkgs]);
  }
  const still = NEEDED.filter((n) => !n.present());
  if (result.exitCode !== 0 || still.length > 0) {
    throw new Error(
      `could not install ${pkgs.join(" ")} (apt-get exit ${result.exitCode}): ${result.stderr.toString().trim().slice(-1000)}`,
    );
  }
}
