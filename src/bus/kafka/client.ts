/** The kafkajs clients of one bus (a working one, a quiet one for the first contact) and kafkajs's log forwarded to ours. */
import { Kafka, type LogEntry, logLevel } from "kafkajs";
import type { Logger } from "../../log";
import type { KafkaOptions } from "./options";

/** The client the bus works with: bounded retries, kafkajs's warnings and errors in our log. */
export function createKafkaClient(opts: KafkaOptions, log: Logger): Kafka {
  return new Kafka({
    clientId: opts.clientId,
    brokers: opts.brokers,
    connectionTimeout: 3000,
    requestTimeout: 10_000,
    retry: { initialRetryTime: 300, maxRetryTime: 10_000, retries: 8 },
    logLevel: logLevel.WARN,
    logCreator: () => (entry: LogEntry) => forwardLog(log, entry),
  });
}

/** A quiet client for the first contact: one clear line per attempt instead of kafkajs's retries. */
export function createProbeClient(opts: KafkaOptions): Kafka {
  return new Kafka({
    clientId: opts.clientId,
    brokers: opts.brokers,
    connectionTimeout: 3000,
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
  });
}

/** Writes one kafkajs log entry to our log, prefixed `kafkajs:`; its errors become warnings. */
function forwardLog(log: Logger, entry: LogEntry): void {
  const { message, ...fields } = entry.log;
  // Bounded retries are deliberate: a broker that refuses idempotence must fail fast so we can fall back.
  if (message.startsWith("Limiting retries for the idempotent producer")) return;
  const line = `kafkajs: ${message}`;
  if (entry.level === logLevel.ERROR) log.warn(line, { namespace: entry.namespace, ...fields });
  else if (entry.level === logLevel.WARN) log.warn(line, { namespace: entry.namespace, ...fields });
  else log.debug(line, { namespace: entry.namespace, ...fields });
}
