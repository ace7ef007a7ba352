/** Topic creation: the topics of a bus's subscriptions exist before its consumers start. */
import type { Admin } from "kafkajs";
import type { Logger } from "../../log";
import type { Subscription } from "../bus";
import type { Lifecycle } from "./lifecycle";

/** Every topic some subscription reads, once each. */
export function subscribedTopics(subscriptions: Subscription[]): string[] {
  return [...new Set(subscriptions.flatMap((s) => s.topics))];
}

/** Creates the topics with `partitions` each, then waits until all of them exist (made here or by someone else). */
export async function ensureTopics(a: Admin, names: string[], partitions: number, lifecycle: Lifecycle, log: Logger): Promise<void> {
  if (names.length === 0) return;
  try {
    await a.createTopics({
      topics: names.map((topic) => ({ topic, numPartitions: partitions })),
      waitForLeaders: true,
    });
  } catch (err) {
    log.warn("could not create topics; going on if they exist", { topics: names, err });
  }
  for (let attempt = 1; ; attempt++) {
    const existing = new Set(await a.listTopics());
    const missing = names.filter((n) => !existing.has(n));
    if (missing.length === 0) return;
    if (lifecycle.stopping) throw new Error("stopped while waiting for topics");
    log.warn("waiting for topics to exist", { missing, attempt });
    await lifecycle.sleep(Math.min(5000, 500 * attempt));
  }
}
