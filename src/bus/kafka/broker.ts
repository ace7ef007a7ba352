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

/** The cluster id librdkafka's mock broker reports: `mockCluster` and a hex number (rdkafka_mock.c). */
const MOCK_CLUSTER_ID = /^mockCluster[0-9a-f]+$/;

/**
 * With mockBrokerQuirks the bus works around librdkafka's mock broker (patches/kafkajs@2.2.4.patch),
 * which only the tests run against: refused unless the cluster id is the mock's, and said loudly.
 */
export async function checkMockBroker(admin: Admin, brokers: string[], log: Logger): Promise<void> {
  const { clusterId } = await admin.describeCluster();
  if (!MOCK_CLUSTER_ID.test(clusterId)) {
    throw new Error(
      `KAFKA_MOCK_BROKER_QUIRKS=true is for tests against librdkafka's mock broker only, and the broker at ${brokers.join(",")} ` +
        `is not one (cluster id ${JSON.stringify(clusterId)}): unset it`,
    );
  }
  log.warn("KAFKA_MOCK_BROKER_QUIRKS=true: kafkajs works around librdkafka's mock broker (tests only, never against Kafka)", {
    cluster_id: clusterId,
  });
}
