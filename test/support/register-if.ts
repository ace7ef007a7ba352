/** Cases that do not depend on the topology or backend a suite runs on, registered on one of them only. */
import { test } from "bun:test";

/** A test case as a suite registers it: a name, a body and an optional timeout. */
type Case = (name: string, fn: () => Promise<void> | void, timeoutMs?: number) => void;

/** `test` where `here` holds; elsewhere the case is not registered at all (counted once, never as skipped). */
export function registerIf(here: boolean): Case {
  return here ? (name, fn, timeoutMs) => test(name, fn, timeoutMs) : () => {};
}
