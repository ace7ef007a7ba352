/**
 * PGlite made durable. PGlite starts PostgreSQL with fsync off (`-F`) and its Node filesystem (the
 * Emscripten NODEFS: every write goes straight to the real file with fs.writeSync) has no fsync, so
 * a commit reached the page cache and no further (PGlite issue 1107). Here PostgreSQL runs with
 * fsync on (wal_sync_method=fsync, since the build's fdatasync is a no-op) and NODEFS gets the
 * fsync it lacks, so PostgreSQL's own rules decide what reaches the disk when: the WAL before a
 * commit counts, data files and directories at checkpoints, the WAL before any data page it covers.
 *
 * One change for speed: the WAL fsync a commit asks for is not done inside the commit (which runs
 * on the event loop, blocking every request) but owed, and paid by `barrier()` off the event loop
 * before anything is acknowledged: one fdatasync serves every commit that finished before it began
 * (group commit). Whatever else would rely on the WAL being on disk (writing or syncing any other
 * file, renaming, truncating, removing) pays what is owed first, synchronously, so PostgreSQL's
 * WAL-before-data and checkpoint ordering hold as if each fsync had been done at once.
 *
 * The WAL is synced through the descriptor PostgreSQL wrote it with (NODEFS's own): no open or
 * close per sync. PostgreSQL closing a segment whose sync is owed or running (a segment switch)
 * leaves that descriptor open until it is paid and back from the thread pool, so its number is
 * never another file's while a sync of it is due.
 */
import { closeSync, fdatasync, fdatasyncSync, fsyncSync, openSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { PGlite, type PGliteOptions } from "@electric-sql/pglite";
import { NodeFS } from "@electric-sql/pglite/nodefs";
import { openPgliteClient } from "./pglite-client";

/**
 * PostgreSQL's start parameters with fsync on: PGlite's `-F` dropped; fsync() as the WAL's sync
 * call, the one the build forwards to the filesystem.
 */
function durableStartParams(params: readonly string[]): string[] {
  return [...params.filter((p) => p !== "-F"), "-c", "fsync=on", "-c", "wal_sync_method=fsync", "-c", "full_page_writes=on"];
}

/** The part of an Emscripten FS node used here. */
interface EmNode {
  name: string;
  parent: EmNode;
}
/**
 * The part of an Emscripten stream used here; `nfd` is NODEFS's real file descriptor, closed when
 * the last of the streams sharing it (`shared.refcount`) is.
 */
interface EmStream {
  node: EmNode;
  nfd?: number;
  shared: { refcount: number };
}
type Op = (...args: never[]) => unknown;
/** Emscripten's NODEFS, as PGlite's module hands it to a pre-run hook. */
interface NodeFsModule {
  NODEFS: {
    realPath(node: EmNode): string;
    stream_ops: Record<string, Op> & { write: Op; close: Op };
    node_ops: Record<string, Op>;
  };
}

/** A WAL segment: 24 hex digits in pg_wal (not xlogtemp.N, not a .history file). */
const isSegment = (node: EmNode) => node.parent?.name === "pg_wal" && /^[0-9A-F]{24}$/.test(node.name);

/** What the durability layer did, for /metrics-style checks and the bench. */
interface DurabilityStats {
  /** WAL syncs done off the event loop by barrier(), each serving every commit before it. */
  groupSyncs: number;
  /** Times the owed WAL sync was paid on the event loop, before another file changed. */
  inlineSyncs: number;
  /** fsyncs PostgreSQL asked for that were done at once (data files, directories, pg_control). */
  fileSyncs: number;
  /** fdatasyncs of WAL segments, grouped or inline (one per segment per sync). */
  walSyncs: number;
  /** Segments PostgreSQL closed while their sync was owed or running: kept open until paid. */
  heldCloses: number;
}

/**
 * Owes and pays the WAL's fsync, by file descriptor. `owe` is PostgreSQL's fsync of a segment;
 * `barrier` pays it off the event loop, shared by every caller waiting; `payNow` pays it at once.
 * A descriptor owed or in a sync on the thread pool is never closed under it: `hold` keeps it open
 * past PostgreSQL's close until both are over (`release`).
 */
class WalSync {
  /** Owed since the last pay began. */
  private owed = new Set<number>();
  /** Taken by the pay running and not yet known synced. */
  private paying = new Set<number>();
  /** Handed to the thread pool and not yet back: may not be closed. */
  private busy = new Set<number>();
  /** Closed by PostgreSQL while owed or busy: closed here once neither. */
  private held = new Set<number>();
  private asked = 0;
  private paid = 0;
  private inflight: Promise<void> | null = null;
  private failure: Error | null = null;
  readonly stats: DurabilityStats = { groupSyncs: 0, inlineSyncs: 0, fileSyncs: 0, walSyncs: 0, heldCloses: 0 };

  /** True while a commit's WAL sync is owed or being paid. */
  get owing(): boolean {
    return this.owed.size > 0 || this.paying.size > 0;
  }

  owe(fd: number): void {
    this.owed.add(fd);
    this.asked += 1;
  }

  /** True when closing `fd` now could lose a sync or hand its number to another file mid-sync. */
  holds(fd: number): boolean {
    return this.owed.has(fd) || this.busy.has(fd);
  }

  /** PostgreSQL closed `fd`, which `holds`: it stays open until paid and back from the thread pool. */
  hold(fd: number): void {
    this.held.add(fd);
    this.stats.heldCloses += 1;
  }

  /** Pays what is owed now, on the calling thread: before anything that relies on it. */
  payNow(): void {
    if (!this.owing) return;
    const fds = new Set([...this.paying, ...this.owed]);
    for (const fd of fds) fdatasyncSync(fd);
    this.stats.walSyncs += fds.size;
    this.owed.clear();
    this.paying.clear(); // synced here: the flush in flight still settles its callers when it ends
    this.paid = this.asked;
    this.stats.inlineSyncs += 1;
    this.release();
  }

  /** Resolves once every WAL sync asked before the call is done (sharing one fdatasync with other callers). */
  async barrier(): Promise<void> {
    const target = this.asked;
    while (this.paid < target) {
      if (this.failure) throw this.failure;
      this.inflight ??= this.pay().finally(() => {
        this.inflight = null;
      });
      await this.inflight;
    }
    if (this.failure) throw this.failure;
  }

  private async pay(): Promise<void> {
    const target = this.asked;
    const fds = [...this.owed];
    this.owed.clear();
    for (const fd of fds) {
      this.paying.add(fd);
      this.busy.add(fd);
    }
    try {
      await Promise.all(fds.map(datasync));
      this.paid = Math.max(this.paid, target);
      this.stats.groupSyncs += 1;
      this.stats.walSyncs += fds.length;
    } catch (err) {
      // As PostgreSQL's PANIC on a failed fsync: what the kernel dropped cannot be written again,
      // so nothing more is acknowledged until a restart replays the WAL.
      this.failure = new Error(`PGlite could not make its WAL durable (restart the shop): ${(err as Error).message}`, { cause: err });
      throw this.failure;
    } finally {
      this.paying.clear();
      for (const fd of fds) this.busy.delete(fd);
      this.release();
    }
  }

  /** Closes the held descriptors no longer owed nor busy. */
  private release(): void {
    for (const fd of this.held) {
      if (this.holds(fd)) continue;
      this.held.delete(fd);
      closeSync(fd);
    }
  }
}

/** fsync (or fdatasync) of the file at `path`, on the calling thread. */
function syncPath(path: string, dataOnly: boolean): void {
  const fd = openSync(path, "r");
  try {
    if (dataOnly) fdatasyncSync(fd);
    else fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** fdatasync of `fd` on libuv's thread pool: the event loop serves requests meanwhile. */
function datasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

/** True when `length` bytes of `buffer` from `offset` are all zero. */
function allZero(buffer: Int8Array, offset: number, length: number): boolean {
  for (let i = offset, end = offset + length; i < end; i++) if (buffer[i] !== 0) return false;
  return true;
}

/**
 * Operations on files that PostgreSQL orders after a WAL flush (a truncation, a dropped or renamed
 * file), so they first pay an owed WAL sync. Creating an empty file needs none.
 */
const NODE_CHANGES = ["rename", "unlink", "rmdir", "setattr", "symlink"] as const;

/**
 * PGlite's NodeFS with a real fsync (see the top of this file). Pass it as PGlite's `fs` with
 * durableStartParams(), then call `group()` once open: until then every fsync is done at once.
 */
class DurableNodeFS extends NodeFS {
  private readonly wal = new WalSync();
  private grouping = false;

  override async init(pg: PGlite, opts: Parameters<NodeFS["init"]>[1]): ReturnType<NodeFS["init"]> {
    const result = await super.init(pg, opts);
    const hook = (mod: unknown) => this.hook(mod as NodeFsModule);
    result.emscriptenOpts.preRun = [...(result.emscriptenOpts.preRun ?? []), hook];
    return result;
  }

  /** From now on a commit's WAL sync is owed to barrier() instead of done inside the commit. */
  group(): void {
    this.grouping = true;
  }

  /** Resolves once every commit made before the call is on disk. */
  barrier(): Promise<void> {
    return this.wal.barrier();
  }

  /** Pays any owed WAL sync now (at close). */
  flush(): void {
    this.wal.payNow();
  }

  get stats(): DurabilityStats {
    return this.wal.stats;
  }

  private hook(mod: NodeFsModule): void {
    const nodefs = mod.NODEFS;
    const ops = nodefs.stream_ops;
    const wal = this.wal;
    ops.fsync = ((stream: EmStream) => {
      const segment = isSegment(stream.node);
      if (segment && this.grouping && stream.nfd !== undefined) {
        wal.owe(stream.nfd);
        return 0;
      }
      if (!segment) wal.payNow(); // the WAL before what it covers
      syncPath(nodefs.realPath(stream.node), segment);
      wal.stats.fileSyncs += 1;
      return 0;
    }) as Op;
    const write = ops.write;
    ops.write = ((stream: EmStream, buffer: Int8Array, offset: number, length: number, position: number) => {
      // A page of zeros (a relation growing by a block) reflects no WAL record: nothing to pay first.
      if (wal.owing && !isSegment(stream.node) && !allZero(buffer, offset, length)) wal.payNow();
      return (write as (...a: unknown[]) => unknown)(stream, buffer, offset, length, position);
    }) as Op;
    const close = ops.close;
    ops.close = ((stream: EmStream) => {
      // NODEFS closes `nfd` when the last stream sharing it is closed: if its sync is due, it stays open.
      if (stream.nfd !== undefined && stream.shared.refcount === 1 && wal.holds(stream.nfd)) {
        stream.shared.refcount = 0;
        wal.hold(stream.nfd);
        return;
      }
      return (close as (s: EmStream) => unknown)(stream);
    }) as Op;
    const setattr = ops.setattr as Op;
    ops.setattr = ((...args: never[]) => {
      wal.payNow();
      return setattr(...args);
    }) as Op;
    for (const name of NODE_CHANGES) {
      const op = nodefs.node_ops[name] as Op;
      nodefs.node_ops[name] = ((...args: never[]) => {
        wal.payNow();
        return op(...args);
      }) as Op;
    }
  }
}

/** What the shop's database needs of the durability layer. */
export interface Durability {
  /** Resolves once every commit made before the call is on disk. */
  barrier(): Promise<void>;
  /** Pays any owed WAL sync (after the database closed). */
  flush(): void;
  readonly stats: DurabilityStats;
}

/**
 * Opens PGlite (the client drizzle needs: see pglite-client.ts) on `dataDir`: durable (fsync on,
 * see above) unless `unsafeNoFsync`, PGlite's own behaviour that an OS crash or a power cut can
 * undo. In memory there is nothing to make durable.
 */
export async function createPglite(
  dataDir: string | null,
  options: PGliteOptions,
  unsafeNoFsync: boolean,
): Promise<{ client: PGlite; durability: Durability | null }> {
  if (!dataDir || unsafeNoFsync)
    return { client: await openPgliteClient({ ...options, dataDir: dataDir ?? "memory://" }), durability: null };
  const fs = new DurableNodeFS(dataDir);
  const client = await openPgliteClient({
    ...options,
    fs,
    startParams: durableStartParams(options.startParams ?? PGlite.defaultStartParams),
  });
  fs.group();
  return { client, durability: fs };
}

/** fsyncs every file and directory under `dir` (a directory PGlite made without fsync). */
export function syncTree(dir: string): void {
  const walk = (path: string) => {
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      const child = join(path, entry.name);
      if (entry.isDirectory()) walk(child);
      else if (entry.isFile()) syncPath(child, false);
    }
    syncPath(path, false);
  };
  walk(dir);
}

/** fsyncs a directory: a rename or a new file in it lasts. */
export const syncDirectory = (dir: string): void => syncPath(dir, false);
