/** What PGlite needs beyond `PGlite.create` to be a fast, small, safe default database. */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { PGlite, type PGliteOptions } from "@electric-sql/pglite";
import { assetPath, IN_BINARY, PGLITE_ASSETS } from "../assets";
import { syncDirectory, syncTree } from "./pglite-durability";

/**
 * PGlite's own start parameters plus a small buffer pool: 16 MB instead of 128 MB halves the
 * resident memory under load (measured: peak ~300 MB instead of 420-560 MB) at no cost here.
 */
export const PGLITE_OPTIONS: PGliteOptions = {
  startParams: [...PGlite.defaultStartParams, "-c", "shared_buffers=16MB"],
};

let embedded: Promise<PGliteOptions> | null = null;

/**
 * PGLITE_OPTIONS, plus, in the binary, PGlite's wasm and data bundle from the embedded files:
 * PGlite looks for them beside its own module, which a compiled binary does not have on disk.
 */
export function pgliteOptions(): Promise<PGliteOptions> {
  if (!IN_BINARY) return Promise.resolve(PGLITE_OPTIONS);
  embedded ??= (async () => {
    const compile = async (file: string) => WebAssembly.compile(await Bun.file(assetPath(file)).arrayBuffer());
    const [pgliteWasmModule, initdbWasmModule] = await Promise.all([compile(PGLITE_ASSETS.wasm), compile(PGLITE_ASSETS.initdb)]);
    return { ...PGLITE_OPTIONS, pgliteWasmModule, initdbWasmModule, fsBundle: Bun.file(assetPath(PGLITE_ASSETS.data)) };
  })();
  return embedded;
}

/** The hidden argument with which the binary runs itself to initialise a data directory (see ensureDataDir). */
export const INIT_DATA_DIR_FLAG = "--internal-init-data-dir";

/** Initialises a new PGlite data directory and closes it: the child process's whole job. */
export async function initDataDir(dir: string): Promise<void> {
  const fresh = await PGlite.create(dir, await pgliteOptions());
  await fresh.close();
}

/**
 * Creates a new data directory atomically: PGlite initialises into a scratch directory that is
 * renamed into place only once complete, so a process killed during its first start never
 * leaves a half-made directory that cannot be opened again. The initialisation runs in a child
 * process: it takes about 1 GB of memory that a process never gives back.
 */
export async function ensureDataDir(dataDir: string): Promise<void> {
  if (existsSync(dataDir) && readdirSync(dataDir).length > 0) return;
  mkdirSync(dirname(dataDir), { recursive: true });
  removeAbandonedScratch(dataDir);
  const scratch = `${dataDir}.init-${process.pid}`;
  // From source, this file runs as a script; the binary has one entry, main.ts, which knows the flag.
  const args = IN_BINARY ? [process.execPath, INIT_DATA_DIR_FLAG, scratch] : [process.execPath, import.meta.path, scratch];
  const child = Bun.spawn(args, { stdout: "ignore", stderr: "pipe" });
  const [code, err] = await Promise.all([child.exited, new Response(child.stderr).text()]);
  if (code !== 0) throw new Error(`PGlite could not initialise ${dataDir}: ${err.trim().slice(-500)}`);
  syncTree(scratch); // PGlite wrote it without fsync: on disk before it is the data directory
  rmSync(dataDir, { recursive: true, force: true }); // an empty directory, if any
  renameSync(scratch, dataDir);
  syncDirectory(dirname(dataDir));
}

/** Removes scratch directories left by first starts whose process died before the rename. */
function removeAbandonedScratch(dataDir: string): void {
  const prefix = `${basename(dataDir)}.init-`;
  for (const name of readdirSync(dirname(dataDir))) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length));
    if (Number.isInteger(pid) && pid !== process.pid && isAlive(pid)) continue;
    rmSync(join(dirname(dataDir), name), { recursive: true, force: true });
  }
}

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Another live process owns the data directory: PGlite is one process's database. */
class DataDirInUse extends Error {
  override readonly name = "DataDirInUse";
  constructor(
    readonly dataDir: string,
    readonly pid: number,
  ) {
    super(`${dataDir} is in use by process ${pid} (${dataDir}.lock): stop it first, or set DATA_DIR to another directory`);
  }
}

/**
 * Makes this process the one owner of `dataDir` through `<dataDir>.lock` (its pid), created
 * exclusively beside the directory, before anything opens or initialises it. A lock whose process
 * is gone (kill -9) is taken over. Returns the release, to call once the database is closed.
 */
export function lockDataDir(dataDir: string): () => void {
  mkdirSync(dirname(dataDir), { recursive: true });
  const lock = `${dataDir}.lock`;
  for (let attempt = 0; ; attempt++) {
    try {
      writeFileSync(lock, `${process.pid}\n`, { flag: "wx" });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST" || attempt >= 2) throw err;
    }
    const owner = Number.parseInt(readFileSync(lock, "utf8"), 10);
    // The same pid is a previous life of this process (a container's pid 1 restarted): stale too.
    if (Number.isInteger(owner) && owner !== process.pid && isAlive(owner)) throw new DataDirInUse(dataDir, owner);
    rmSync(lock, { force: true });
  }
  return () => {
    try {
      if (Number.parseInt(readFileSync(lock, "utf8"), 10) === process.pid) rmSync(lock, { force: true });
    } catch {}
  };
}

// Run as a script (by ensureDataDir): initialise the directory named by the argument.
if (import.meta.main) await initDataDir(process.argv[2] as string);

/** PGlite never checkpoints (nor vacuums) by itself: without this, a restart after a crash replays every transaction since the last clean close. */
export const CHECKPOINT_EVERY_MS = 60_000;
