/** Per-process CPU time and peak memory, read from /proc (Linux). */
import { readdirSync, readFileSync } from "node:fs";

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** Named pids, e.g. `{ registry: 123, wallet: 124 }`. */
export type Pids = Record<string, number>;

/** CPU ticks per named process tree at one instant. */
export interface CpuSnapshot {
  at: number;
  ticks: Record<string, number>;
  /** Ticks of the Bun processes' runtime threads (every thread but the JavaScript one), by pid. */
  runtime: Map<number, number>;
}

interface ProcStat {
  ppid: number;
  /** utime + stime + cutime + cstime: its own CPU and that of its exited, waited-for children. */
  ticks: number;
}

/** Reads /proc/<pid>/stat; null if the process is gone. */
function readStat(pid: number): ProcStat | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  const f = stat
    .slice(stat.lastIndexOf(")") + 2)
    .split(" ")
    .map(Number);
  return { ppid: f[1] ?? 0, ticks: (f[11] ?? 0) + (f[12] ?? 0) + (f[13] ?? 0) + (f[14] ?? 0) };
}

/** Every process on the machine, by pid. */
function allStats(): Map<number, ProcStat> {
  const stats = new Map<number, ProcStat>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const s = readStat(Number(entry));
    if (s) stats.set(Number(entry), s);
  }
  return stats;
}

/**
 * CPU ticks of a process and all its descendants, living or exited (an exited child's time
 * moves into its parent's cutime/cstime), so a PostgreSQL postmaster counts its backends.
 */
function treeTicks(pid: number, stats: Map<number, ProcStat>, children: Map<number, number[]>): number {
  const own = stats.get(pid);
  if (!own) throw new Error(`process ${pid} is gone`);
  return own.ticks + (children.get(pid) ?? []).reduce((sum, child) => sum + treeTicks(child, stats, children), 0);
}

/** Each process's children, by parent pid. */
function childrenOf(stats: Map<number, ProcStat>): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const [pid, s] of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), pid]);
  return children;
}

/** Reads the CPU ticks of every named process tree now. */
export function cpuSnapshot(pids: Pids): CpuSnapshot {
  const stats = allStats();
  const children = childrenOf(stats);
  return {
    at: performance.now(),
    ticks: Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, treeTicks(pid, stats, children)])),
    runtime: new Map(Object.values(pids).flatMap((pid) => (isBun(pid) ? [[pid, runtimeThreadTicks(pid)] as const] : []))),
  };
}

/** Whether the process runs Bun (its main thread is named after the program). */
function isBun(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "bun";
  } catch {
    return false;
  }
}

/** The sum of `read(tid)` over the living threads of `pid` (its first, the JavaScript one, left out when `skipMain`). */
function sumThreads(pid: number, skipMain: boolean, read: (tid: string) => number): number {
  let sum = 0;
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0;
  }
  for (const tid of tids) {
    if (skipMain && Number(tid) === pid) continue;
    try {
      sum += read(tid);
    } catch {
      // the thread ended meanwhile: its time stays in the process's total, not counted here
    }
  }
  return sum;
}

/**
 * utime + stime of every thread of `pid` but its first (the JavaScript thread, whose id is the
 * pid): JavaScriptCore's compiler and collector threads, the allocator's scavenger, Bun's pools.
 */
function runtimeThreadTicks(pid: number): number {
  return sumThreads(pid, true, (tid) => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(f[11] ?? 0) + Number(f[12] ?? 0);
  });
}

/**
 * CPU ms the Bun processes of `before` spent in their runtime threads since then (a thread that
 * ended meanwhile is not counted: its time shows only in the process's total).
 */
export function runtimeMsSince(before: CpuSnapshot): number {
  let ticks = 0;
  for (const [pid, t] of before.runtime) ticks += Math.max(0, runtimeThreadTicks(pid) - t);
  return (ticks / TICKS_PER_SECOND) * 1000;
}

/** % of one core each process tree used since `before` (same names and pids). */
export function cpuSince(before: CpuSnapshot, pids: Pids): Record<string, number> {
  const after = cpuSnapshot(pids);
  const seconds = (after.at - before.at) / 1000;
  return Object.fromEntries(
    Object.entries(after.ticks).map(([name, t]) => [name, ((t - (before.ticks[name] ?? t)) / TICKS_PER_SECOND / seconds) * 100]),
  );
}

/** Busy CPU ticks of the whole machine (all cores, from /proc/stat), at one instant. */
export interface MachineSnapshot {
  at: number;
  busy: number;
}

/** Reads the machine's busy ticks now (everything but idle and iowait). */
export function machineSnapshot(): MachineSnapshot {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0); // user..steal; guest is inside user
  return { at: performance.now(), busy: total - (f[3] ?? 0) - (f[4] ?? 0) };
}

/** % of one core the whole machine was busy since `before` (up to 100 × cores). */
export function machineSince(before: MachineSnapshot): number {
  const after = machineSnapshot();
  return ((after.busy - before.busy) / TICKS_PER_SECOND / ((after.at - before.at) / 1000)) * 100;
}

/** Pid of a direct child of `parent` whose command line contains `text`; throws if none. */
export function findChild(parent: number, text: string): number {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || readStat(Number(entry))?.ppid !== parent) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(text)) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`no child of ${parent} runs ${text}`);
}

/** Peak resident set size (VmHWM) of a process, in MiB. */
export function peakRssMb(pid: number): number {
  return statusMb(pid, "VmHWM");
}

/** Resident set size now (VmRSS) of a process, in MiB. */
export function rssMb(pid: number): number {
  return statusMb(pid, "VmRSS");
}

function statusMb(pid: number, field: "VmHWM" | "VmRSS"): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, "m").exec(status)?.[1];
  if (kb === undefined) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(kb) / 1024;
}

/** The postmaster of the PostgreSQL cluster started with `cluster_name` = `name` (its children are titled "postgres: name: ..."). */
export function findPostmaster(name: string): number {
  const prefix = `postgres: ${name}: `;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
    } catch {
      continue;
    }
    if (!cmdline.startsWith(prefix)) continue;
    const ppid = readStat(Number(entry))?.ppid;
    if (ppid) return ppid;
  }
  throw new Error(`no process titled "${prefix}..." found`);
}

/**
 * CPU nanoseconds at one instant (the scheduler's own accounts, /proc/<pid>/task/<tid>/schedstat:
 * exact where /proc/<pid>/stat counts 10 ms ticks): the named process trees' living threads, and
 * of those the Bun processes' runtime threads. For windows too short for ticks (a unit measured alone).
 */
export interface CpuNs {
  at: number;
  total: number;
  runtime: number;
}

/** Nanoseconds on a CPU of every living thread of `pid` (the main one left out when `runtimeOnly`). */
function threadNs(pid: number, runtimeOnly: boolean): number {
  return sumThreads(pid, runtimeOnly, (tid) => Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]));
}

/** Reads the CPU nanoseconds of every named process tree (descendants included) now. */
export function cpuNs(pids: Pids): CpuNs {
  const children = childrenOf(allStats());
  const tree = (pid: number): number[] => [pid, ...(children.get(pid) ?? []).flatMap(tree)];
  let total = 0;
  let runtime = 0;
  for (const pid of Object.values(pids)) {
    for (const p of tree(pid)) total += threadNs(p, false);
    if (isBun(pid)) runtime += threadNs(pid, true);
  }
  return { at: performance.now(), total, runtime };
}
