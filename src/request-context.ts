/**
 * The request id of the work in progress: an HTTP request, or a consumed message that carries
 * one. The HTTP middleware and the message consumer set it; the outbox stamps it on the messages
 * it writes and the logger adds it to every line, so one order's lines share it across processes.
 */
import { AsyncLocalStorage } from "node:async_hooks";

const store = new AsyncLocalStorage<string | undefined>();

/** The request id of the current async context, if any. */
export const currentRequestId = (): string | undefined => store.getStore();

/** Runs `fn` with `id` as the current request id (undefined: none, whatever the caller had). */
export function withRequestId<T>(id: string | undefined, fn: () => T): T {
  return store.run(id, fn);
}

/** Runs `fn` outside any request: for work a request only wakes up (a relay pass), which must not inherit its id. */
export function outsideRequest<T>(fn: () => T): T {
  return store.exit(fn);
}
