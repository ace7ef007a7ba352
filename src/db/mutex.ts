/** A promise-chain mutex: calls run one at a time, in arrival order. */
export type Exclusive = <T>(fn: () => Promise<T>) => Promise<T>;

/** Creates a mutex; a failing call releases it like a succeeding one. */
export function createMutex(): Exclusive {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };
}
