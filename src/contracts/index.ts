/** Every message that crosses a module boundary: schemas, types, topics, (de)serialisation. */
import { z } from "zod";
import type { Topics } from "./topics";
import { EnvelopeSchema } from "./envelope";
import { ORDER_COMPENSATED, OrderCompensatedSchema } from "./order-compensated";
import { ORDER_CREATED, OrderCreatedSchema } from "./order-created";
import { ORDER_REJECTED, OrderRejectedSchema } from "./order-rejected";
import { STEP_SUCCEEDED, StepSucceededSchema } from "./step-succeeded";

export * from "./envelope";
export * from "./order-compensated";
export * from "./order-created";
export * from "./order-rejected";
export * from "./step-succeeded";

/**
 * Message type -> payload schema, the version writers put in the envelope, and the topic (key of
 * Topics) it travels on. A reader accepts `version` and the next one (whose additive changes,
 * new optional fields, its schema strips); anything else is dead-lettered. Which changes need a
 * new version, and in which order to deploy them: docs/adr/0015-message-versions-side-by-side.md;
 * `bun run contracts:check` compares these schemas with the committed baseline.
 */
export const MESSAGES = {
  [ORDER_CREATED]: { schema: OrderCreatedSchema, version: 1, topic: "new_orders" },
  [STEP_SUCCEEDED]: { schema: StepSucceededSchema, version: 1, topic: "success" },
  [ORDER_REJECTED]: { schema: OrderRejectedSchema, version: 1, topic: "rejected_orders" },
  [ORDER_COMPENSATED]: { schema: OrderCompensatedSchema, version: 1, topic: "success" },
} as const satisfies Record<string, { schema: z.ZodType; version: number; topic: keyof Topics }>;

/** The envelope versions a reader of `type` accepts: its own and the next (additive changes only). */
export const readableVersions = (type: MessageType): number[] => [MESSAGES[type].version, MESSAGES[type].version + 1];

export type MessageType = keyof typeof MESSAGES;
export type PayloadOf<T extends MessageType> = z.infer<(typeof MESSAGES)[T]["schema"]>;

/** A validated envelope whose payload matches its type. */
export type Message = {
  [T in MessageType]: {
    id: string;
    type: T;
    version: number;
    occurred_at: string;
    order_id: string;
    /** See EnvelopeSchema: set by the outbox from the request (or message) being served. */
    request_id?: string;
    /** See EnvelopeSchema: set by the outbox when tracing is on. */
    traceparent?: string;
    tracestate?: string;
    payload: PayloadOf<T>;
  };
}[MessageType];
export type MessageOf<T extends MessageType> = Extract<Message, { type: T }>;

/** The outcome of reading a record off the bus. */
export type ParseResult = { ok: true; message: Message } | { ok: false; error: string };

const isMessageType = (t: string): t is MessageType => Object.hasOwn(MESSAGES, t);

/** Parses and validates a raw record value; never throws. */
export function parseMessage(raw: string): ParseResult {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return { ok: false, error: "not JSON" };
  }
  const env = EnvelopeSchema.safeParse(json);
  if (!env.success) return { ok: false, error: `bad envelope: ${describe(env.error)}` };
  const { type } = env.data;
  if (!isMessageType(type)) return { ok: false, error: `unknown type ${JSON.stringify(type)}` };
  if (!readableVersions(type).includes(env.data.version)) return { ok: false, error: `unsupported version ${env.data.version}` };
  // The next version's new optional fields are stripped here, so they never reach a decision.
  const payload = MESSAGES[type].schema.safeParse(env.data.payload);
  if (!payload.success) return { ok: false, error: `bad ${type} payload: ${describe(payload.error)}` };
  if (payload.data.order_id !== env.data.order_id) {
    return { ok: false, error: "payload order_id differs from envelope order_id" };
  }
  return { ok: true, message: { ...env.data, type, payload: payload.data } as Message };
}

/** Builds a new envelope for `type` with a fresh id. */
export function createMessage<T extends MessageType>(type: T, payload: PayloadOf<T>): MessageOf<T> {
  return {
    id: crypto.randomUUID(),
    type,
    version: MESSAGES[type].version,
    occurred_at: new Date().toISOString(),
    order_id: payload.order_id,
    payload,
  } as MessageOf<T>;
}

/** The topic a message type travels on, under the configured names. */
export const topicOf = (type: MessageType, topics: Topics): string => topics[MESSAGES[type].topic];

function describe(error: z.ZodError): string {
  const issue = error.issues[0];
  return issue ? `${issue.path.join(".") || "(root)"}: ${issue.message}` : "invalid";
}
