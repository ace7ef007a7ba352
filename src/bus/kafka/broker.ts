/** The first contact with Kafka: waiting until a broker answers, then connecting the bus's admin client. */
import type { Admin, Kafka } from "kafkajs";
import type { Logger } from "../../log";
import type { Lifecycle } from "./lifecycle";

/** Tries the broker through the quiet `probe` client until it answers, one log line per attempt; gives up only when the bus stops. */
export async function waitForBroker(probe: Kafka, brokers: string[], lifecycle: Lifecycle, log: Logger): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const a = probe.admin();
    try {
      await a.connect();
      await a.describeCluster();
      await a.disconnect();
      return;
    } catch (err) {
      await a.disconnect().catch(() => {});
      if (lifecycle.stopping) throw new Error("stopped while waiting for Kafka");
      log.warn("waiting for Kafka", { brokers: brokers.join(","), attempt, err });
      await lifecycle.sleep(Math.min(5000, 500 * attempt));
      if (lifecycle.stopping) throw new Error("stopped while waiting for Kafka");
    }
  }
}

/** The admin client the bus keeps: topic creation at start, the cluster check of health. */
export async function connectAdmin(kafka: Kafka): Promise<Admin> {
  const a = kafka.admin();
  await a.connect();
  return a;
}
