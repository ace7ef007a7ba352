/** Undo stack for everything the bench starts: run on success, failure, Ctrl-C or a crash. */

type Undo = { what: string; run: () => Promise<void> | void };

const stack: Undo[] = [];
const childPids = new Set<number>();

/** Registers `run` to be called (last registered first) by {@link cleanUp}. */
export function defer(what: string, run: () => Promise<void> | void): void {
  stack.push({ what, run });
}

/** Remembers a child pid so that an abrupt exit still SIGKILLs it. */
export function trackPid(pid: number): void {
  childPids.add(pid);
}

/** Forgets a child pid once it has exited. */
export function untrackPid(pid: number): void {
  childPids.delete(pid);
}

/** How many undos are registered: pass it to {@link cleanUp} later to undo only what came after. */
export function depth(): number {
  return stack.length;
}

/** Runs the registered undos, newest first, until `downTo` remain; errors are reported, not thrown. */
export async function cleanUp(downTo = 0): Promise<void> {
  while (stack.length > downTo) {
    const entry = stack.pop() as Undo;
    try {
      await entry.run();
    } catch (err) {
      console.error(`cleanup: ${entry.what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

/** Cleans up on SIGINT/SIGTERM, and SIGKILLs tracked children if the process exits anyway. */
export function installSignalHandlers(): void {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: cleaning up`);
      cleanUp().finally(() => process.exit(130));
    });
  }
  process.on("exit", () => {
    for (const pid of childPids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  });
}
