/**
 * A PGlite data directory that a start is about to create is taken away again if that start
 * does not complete, so that a failed first start leaves nothing behind. A directory that existed
 * before the start (empty or not) is never removed.
 */
import { existsSync, rmdirSync, rmSync } from "node:fs";
import { dirname, resolve } from "node:path";

/** Removes what this start created for `dataDir`. */
export type DataDirCleanup = (err: unknown) => void;

/**
 * Call before opening: null when `dataDir` exists already; else a cleanup that removes it (and
 * its scratch directory, and the parent directories this start made, if they are empty), unless
 * the start failed because another process owns the directory (that one is making it now).
 */
export function newDataDir(dataDir: string): DataDirCleanup | null {
  const created: string[] = [];
  for (let path = resolve(dataDir); !existsSync(path) && path !== dirname(path); path = dirname(path)) created.push(path);
  const [own, ...parents] = created;
  if (own === undefined) return null;
  return (err) => {
    // The name only: src/db/pglite-tuning.ts keeps its error class to itself.
    if ((err as { name?: unknown } | null)?.name === "DataDirInUse") return;
    rmSync(own, { recursive: true, force: true });
    rmSync(`${own}.init-${process.pid}`, { recursive: true, force: true });
    for (const dir of parents) {
      try {
        rmdirSync(dir); // empty only: anything another process put there stays
      } catch {
        return;
      }
    }
  };
}
