/** The publish path: connecting the producer and sending records, grouped by topic, acknowledged by every in-sync replica. */
import { type Kafka, Partitioners, type Producer, type RecordMetadata } from "kafkajs";
import type { Logger } from "../../log";
import type { BusRecord } from "../bus";

/** An idempotent producer where the broker allows it (librdkafka's mock does not), else a plain one. */
export async function connectProducer(kafka: Kafka, log: Logger): Promise<Producer> {
  const settings = { createPartitioner: Partitioners.DefaultPartitioner };
  const idempotent = kafka.producer({ ...settings, idempotent: true });
  try {
    await idempotent.connect();
    return idempotent;
  } catch (err) {
    await idempotent.disconnect().catch(() => {});
    log.warn("broker refused an idempotent producer; using a plain one (acks=all, one request in flight)", { err });
  }
  const plain = kafka.producer({ ...settings, maxInFlightRequests: 1 });
  await plain.connect();
  return plain;
}

/** Sends records in one request, in order per topic; settles once every in-sync replica has them (acks=all). */
export function publishRecords(producer: Producer, records: BusRecord[]): Promise<RecordMetadata[]> {
  const byTopic = new Map<string, BusRecord[]>();
  for (const r of records) byTopic.set(r.topic, [...(byTopic.get(r.topic) ?? []), r]);
  return producer.sendBatch({
    acks: -1,
    topicMessages: [...byTopic].map(([topic, rs]) => ({
      topic,
      messages: rs.map((r) => ({ key: r.key, value: r.value, headers: r.headers })),
    })),
  });
}
