/**
 * The other checkout of a before/after run: BENCH_BASELINE_DIR as it is, or BENCH_BASELINE_REV
 * checked out (`git worktree add --detach`) in a temporary directory with `bun install` run
 * there; the worktree is removed when the bench ends.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { defer } from "./cleanup";
import type { BenchSettings } from "./settings";

const ROOT = resolve(import.meta.dir, "..");

/** Runs a command to its end, throwing with its output when it fails. */
function run(cmd: string[], cwd: string): void {
  const r = Bun.spawnSync(cmd, { cwd, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0)
    throw new Error(`${cmd.join(" ")} (in ${cwd}) exited with ${r.exitCode}: ${r.stderr.toString().trim() || r.stdout.toString().trim()}`);
}

/** The baseline checkout's directory, ready to run `bun run src/app/main.ts` in; null when none is asked for. */
export async function prepareBaseline(s: BenchSettings): Promise<string | null> {
  if (s.baselineDir) return s.baselineDir;
  if (!s.baselineRev) return null;
  const dir = join(mkdtempSync(join(tmpdir(), "bench-baseline-")), "checkout");
  console.error(`[baseline] git worktree add --detach ${dir} ${s.baselineRev}; bun install`);
  run(["git", "worktree", "add", "--detach", dir, s.baselineRev], ROOT);
  defer("remove the baseline worktree", () => {
    Bun.spawnSync(["git", "worktree", "remove", "--force", dir], { cwd: ROOT });
    rmSync(resolve(dir, ".."), { recursive: true, force: true });
  });
  run(["bun", "install", "--frozen-lockfile"], dir);
  return dir;
}
