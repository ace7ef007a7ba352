/**
 * The AsyncAPI 3.0 document of the bus, built from the contracts: payload and header schemas are
 * the zod schemas through z.toJSONSchema, senders and receivers come from MESSAGE_FLOWS.
 */
import { z } from "zod";
import { SIGNATURE_HEADER, signRecord } from "../bus/signing";
import { createMessage, MESSAGES, type MessageOf, type MessageType, readableVersions } from "../contracts";
import { EnvelopeSchema } from "../contracts/envelope";
import { CHANNEL_DESCRIPTIONS, MESSAGE_FLOWS, modulesOf } from "../contracts/flows";
import type { Topics } from "../contracts/topics";

/** What the document takes from the configuration of the service that serves it. */
export interface AsyncApiOptions {
  topics: Topics;
  /** KAFKA_BROKERS. */
  brokers: readonly string[];
  /** BUS_PARTITIONS: partitions per topic (memory bus, and topics the Kafka bus creates). */
  partitions: number;
}

/** A JSON value (the document is served as is). */
type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
/** A JSON object. */
export type JsonObject = { [key: string]: Json };

/** The Kafka bindings version the document uses. */
const KAFKA_BINDINGS = "0.5.0";

/** The key every record of a message type carries: the order id (per-order ordering within a topic). */
export const RecordKeySchema = EnvelopeSchema.shape.order_id.describe(
  "The order id (the envelope's order_id): Kafka's default partitioner (murmur2) picks the partition from it, in both buses, so one order's records keep their order within a topic.",
);

/** The headers the outbox relay puts on every record of `type` (src/messaging/outbox-relay.ts). */
export const recordHeadersSchema = <T extends MessageType>(type: T) =>
  z.object({
    "message-id": EnvelopeSchema.shape.id.describe("The envelope's id (repeated for brokers' tooling; consumers read the envelope)."),
    "message-type": z.literal(type).describe("The envelope's type (repeated for brokers' tooling; consumers read the envelope)."),
    [SIGNATURE_HEADER]: z
      .string()
      .regex(/^[A-Za-z0-9_-]{43}$/)
      .optional()
      .describe(
        'Always present with Kafka (a service needs BUS_SIGNING_KEY unless BUS_INSECURE_UNSIGNED_RECORDS=true); in one process when BUS_SIGNING_KEY is set: base64url(HMAC-SHA256(key, "shop-bus-v1\\n" + JSON.stringify([topic, key]) + "\\n" + value)). A consumer that checks signatures dead-letters a record whose signature is missing or wrong ("bad signature").',
      ),
  });

/** The envelope of `type` with its payload schema: what a record's value holds. */
const envelopeSchemaOf = <T extends MessageType>(type: T) =>
  EnvelopeSchema.extend({
    id: EnvelopeSchema.shape.id.describe(
      "Message id, unique per message: consumers keep an inbox of ids, so a redelivery is applied once.",
    ),
    type: z.literal(type).describe("The message type; names the payload schema."),
    version: z
      .literal(MESSAGES[type].version)
      .describe(
        `Payload version, written by producers. Consumers accept versions ${readableVersions(type).join(" and ")} (the next one's new optional fields are ignored) and dead-letter any other.`,
      ),
    occurred_at: EnvelopeSchema.shape.occurred_at.describe("When the producer created the message (ISO 8601 with offset)."),
    order_id: EnvelopeSchema.shape.order_id.describe("The order the message is about; equal to payload.order_id and to the record key."),
    payload: MESSAGES[type].schema,
  });

/** JSON Schema (draft-07, the base of AsyncAPI's Schema Object) of what a consumer accepts. */
function jsonSchema(schema: z.ZodType): JsonObject {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { target: "draft-7", io: "input" }) as JsonObject;
  return rest;
}

const MESSAGE_TYPES = Object.keys(MESSAGES) as MessageType[];
const TOPIC_KEYS = Object.keys(CHANNEL_DESCRIPTIONS) as (keyof Topics)[];
const CONFIG_KEY: Record<keyof Topics, string> = { new_orders: "NEW_ORDERS", rejected_orders: "REJECTED_ORDERS", success: "SUCCESS" };
/** Signs the examples' records; a placeholder, not a key anyone uses. */
const EXAMPLE_SIGNING_KEY = "example-key-only-for-the-document-examples";

const list = (items: string[]) => (items.length <= 1 ? items.join("") : `${items.slice(0, -1).join(", ")} and ${items.at(-1)}`);

/** The example envelopes of `type`, with fixed ids and time so that the document does not change between calls. */
export function exampleMessages<T extends MessageType>(type: T): MessageOf<T>[] {
  const offset = MESSAGE_TYPES.indexOf(type) * 10;
  return MESSAGE_FLOWS[type].examples.map((example, i) => ({
    ...createMessage(type, example.payload),
    id: `00000000-0000-4000-8000-${String(offset + i + 1).padStart(12, "0")}`,
    occurred_at: "2026-01-15T10:00:00.000Z",
  }));
}

function messageObject<T extends MessageType>(type: T, topics: Topics): JsonObject {
  const flow = MESSAGE_FLOWS[type];
  const topic = topics[MESSAGES[type].topic];
  const examples = exampleMessages(type).map((envelope, i) => {
    const value = JSON.stringify(envelope);
    const signature = signRecord(EXAMPLE_SIGNING_KEY, { topic, key: envelope.order_id, value });
    const example = flow.examples[i] as (typeof flow.examples)[number];
    return {
      name: example.name,
      summary: example.summary,
      headers: { "message-id": envelope.id, "message-type": type, [SIGNATURE_HEADER]: signature },
      payload: JSON.parse(value) as JsonObject,
    };
  });
  return {
    name: type,
    title: flow.title,
    summary: flow.summary,
    description: `${flow.summary} Sent by ${list(modulesOf(type, "producers"))}; received by ${list(modulesOf(type, "consumers"))}. The record's value is this envelope as JSON (UTF-8); its key is the order id.`,
    contentType: "application/json",
    headers: jsonSchema(recordHeadersSchema(type)),
    payload: jsonSchema(envelopeSchemaOf(type)),
    correlationId: {
      description: "The order id: the record key, the envelope's order_id and payload.order_id.",
      location: "$message.payload#/order_id",
    },
    bindings: { kafka: { key: jsonSchema(RecordKeySchema), bindingVersion: KAFKA_BINDINGS } },
    examples,
  };
}

function channels(opts: AsyncApiOptions): JsonObject {
  const out: JsonObject = {};
  for (const key of TOPIC_KEYS) {
    const types = MESSAGE_TYPES.filter((t) => MESSAGES[t].topic === key);
    out[key] = {
      address: opts.topics[key],
      title: key,
      description: `${CHANNEL_DESCRIPTIONS[key]} Topic name from each module's config: topics.${key} (environment: TOPIC_${CONFIG_KEY[key]}).`,
      messages: Object.fromEntries(types.map((t) => [t, { $ref: `#/components/messages/${t}` }])),
      bindings: { kafka: { topic: opts.topics[key], partitions: opts.partitions, bindingVersion: KAFKA_BINDINGS } },
    };
  }
  return out;
}

function operations(): JsonObject {
  const out: JsonObject = {};
  for (const type of MESSAGE_TYPES) {
    const flow = MESSAGE_FLOWS[type];
    const channel = MESSAGES[type].topic;
    const sides = [
      ["send", "Sends", "producers"],
      ["receive", "Receives", "consumers"],
    ] as const;
    for (const [action, verb, side] of sides) {
      const modules = flow[side];
      for (const module of modulesOf(type, side)) {
        out[`${module}${verb}${type}`] = {
          action,
          channel: { $ref: `#/channels/${channel}` },
          messages: [{ $ref: `#/channels/${channel}/messages/${type}` }],
          title: `${module} ${verb.toLowerCase()} ${type}`,
          summary: modules[module] as string,
          description:
            action === "send"
              ? `${modules[module]} Written to ${module}'s outbox in the transaction of the change it reports; its relay publishes it (at least once).`
              : `${modules[module]} ${module}'s consumer group applies it once (inbox of message ids), in the transaction of its effect.`,
          tags: [{ name: module }],
        };
      }
    }
  }
  return out;
}

/** The AsyncAPI 3.0.0 document of every message on the bus, under the configured topic names and brokers. */
export function asyncApiDocument(opts: AsyncApiOptions): JsonObject {
  return {
    asyncapi: "3.0.0",
    info: {
      title: "Shop messages",
      version: `${Math.max(...MESSAGE_TYPES.map((t) => MESSAGES[t].version))}.0.0`,
      description:
        "The order saga between registry, wallet and storage. Every message is an envelope { id, type, version, occurred_at, order_id, payload } whose payload schema is named by type. Delivery is at least once in both buses; every consumer is idempotent and dead-letters a record that fails validation. Each service serves this document at GET /asyncapi.json.",
      tags: [
        { name: "registry", description: "Catalogue and orders; decides each order." },
        { name: "wallet", description: "Balances: debits and refunds." },
        { name: "storage", description: "Stock: reservations and releases." },
      ],
    },
    defaultContentType: "application/json",
    servers: {
      kafka: {
        host: "{brokers}",
        protocol: "kafka",
        title: "Kafka (split deployment)",
        description: "BUS=kafka: the services talk through the Kafka cluster named by KAFKA_BROKERS.",
        variables: {
          brokers: { default: opts.brokers.join(","), description: "KAFKA_BROKERS: bootstrap brokers, host:port, comma-separated." },
        },
      },
      memory: {
        host: "localhost",
        protocol: "memory",
        title: "In-process bus (one process)",
        description:
          "BUS=memory (the default): the modules of one process share an in-memory bus with Kafka's semantics: the same topics, keys, headers, partitioner (BUS_PARTITIONS partitions per topic), consumer groups and at-least-once delivery.",
      },
    },
    channels: channels(opts),
    operations: operations(),
    components: { messages: Object.fromEntries(MESSAGE_TYPES.map((t) => [t, messageObject(t, opts.topics)])) },
  };
}
