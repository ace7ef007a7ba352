/** A promise-chain mutex: calls run one at a time, in arrival order. */
export interface Exclusive {
  <T>(fn: () => Promise<T>): Promise<T>;
  /** Calls entered and not finished yet: the one running (if any) and those waiting behind it. */
  readonly queued: number;
}

/** Creates a mutex; a failing call releases it like a succeeding one. */
export function createMutex(): Exclusive {
  let tail: Promise<unknown> = Promise.resolve();
  let queued = 0;
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    queued += 1;
    const run = tail.then(fn, fn).finally(() => {
      queued -= 1;
    });
    tail = run.catch(() => undefined);
    return run;
  };
  return Object.defineProperty(exclusive, "queued", { get: () => queued }) as Exclusive;
}
