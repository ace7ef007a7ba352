/** Per-process CPU time and peak memory, read from /proc (Linux). */
import { readdirSync, readFileSync } from "node:fs";

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** Named pids, e.g. `{ registry: 123, wallet: 124 }`. */
export type Pids = Record<string, number>;

/** CPU ticks per named process tree at one instant. */
export interface CpuSnapshot {
  at: number;
  ticks: Record<string, number>;
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

/** Reads the CPU ticks of every named process tree now. */
export function cpuSnapshot(pids: Pids): CpuSnapshot {
  const stats = allStats();
  const children = new Map<number, number[]>();
  for (const [pid, s] of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), pid]);
  return {
    at: performance.now(),
    ticks: Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, treeTicks(pid, stats, children)])),
  };
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
