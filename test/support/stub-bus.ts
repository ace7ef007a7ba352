/** A bus for relay tests: it only publishes, through the given function; everything else is a no-op. */
import type { Bus } from "../../src/bus/bus";

/** A bus whose `publish` is `publish` (with `publishConcurrency` batches in flight at once). */
export function stubBus(publish: Bus["publish"], publishConcurrency = 1): Bus {
  return {
    kind: "memory",
    publishConcurrency,
    start: async () => {},
    joined: async () => {},
    consumers: () => [],
    onFatal: () => {},
    subscribe: () => {},
    check: async () => {},
    stop: async () => {},
    publish,
  };
}
