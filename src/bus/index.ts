/** Picks the bus named by the settings. */
import type { Settings } from "../config";
import type { Logger } from "../log";
import type { Bus } from "./bus";
import { createMemoryBus } from "./memory";

/** Creates the configured bus; Kafka's client is only loaded when asked for. */
export async function createBus(settings: Settings, log: Logger): Promise<Bus> {
  if (settings.BUS === "memory") return createMemoryBus(log, settings.BUS_PARTITIONS, settings.BUS_LINGER_MS);
  const { createKafkaBus } = await import("./kafka");
  return createKafkaBus(
    {
      brokers: settings.KAFKA_BROKERS,
      clientId: settings.KAFKA_CLIENT_ID,
      partitions: settings.BUS_PARTITIONS,
      sessionTimeoutMs: settings.KAFKA_SESSION_TIMEOUT_MS,
      heartbeatIntervalMs: settings.KAFKA_HEARTBEAT_INTERVAL_MS,
      rebalanceTimeoutMs: settings.KAFKA_REBALANCE_TIMEOUT_MS,
      fetchMaxWaitMs: settings.KAFKA_FETCH_MAX_WAIT_MS,
      mockBrokerQuirks: settings.KAFKA_MOCK_BROKER_QUIRKS,
    },
    log,
  );
}
