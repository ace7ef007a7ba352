/** Every message that crosses a module boundary: schemas, types, topics, (de)serialisation. */
import type { z } from "zod";
import { EnvelopeSchema } from "./envelope";
import { ORDER_COMPENSATED, OrderCompensatedSchema } from "./order-compensated";
import { ORDER_CREATED, OrderCreatedSchema } from "./order-created";
import { ORDER_REJECTED, OrderRejectedSchema } from "./order-rejected";
import { STEP_SUCCEEDED, StepSucceededSchema } from "./step-succeeded";
import type { Topics } from "./topics";

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

export type MessageType = keyof typeof MESSAGES;

/**
 * A message type's previous version, kept for the length of a rolling upgrade after a breaking
 * change raised its version: old writers still write it, old readers still read only it. A
 * reader takes a previous-version record as this version's (`upgrade`); a writer pinned to it
 * (BUS_WRITE_PREVIOUS_VERSIONS) writes `downgrade` of each payload. ADR 0015.
 */
interface PreviousVersion {
  version: number;
  /** The previous version's payload schema. */
  schema: z.ZodType;
  /** A previous-version payload (valid under `schema`) as this version's. */
  upgrade(payload: unknown): unknown;
  /** This version's payload as the previous version's. */
  downgrade(payload: unknown): unknown;
}

/** Previous versions by type; one is listed while a rolling upgrade may still meet it. None yet: every message is at its first version. */
export type PreviousVersions = Partial<Record<MessageType, PreviousVersion>>;
export const PREVIOUS_VERSIONS: PreviousVersions = {};

/**
 * The envelope versions a reader of `type` accepts: its own and the next (additive changes
 * only), and the previous one while `previous` lists it.
 */
export const readableVersions = (type: MessageType, previous: PreviousVersions = PREVIOUS_VERSIONS): number[] => {
  const own = MESSAGES[type].version;
  const before = previous[type]?.version;
  return before === undefined ? [own, own + 1] : [before, own, own + 1];
};
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

/** Parses and validates a raw record value (`previous`: the previous versions still read); never throws. */
export function parseMessage(raw: string, previous: PreviousVersions = PREVIOUS_VERSIONS): ParseResult {
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
  if (!readableVersions(type, previous).includes(env.data.version)) return { ok: false, error: `unsupported version ${env.data.version}` };
  let rawPayload: unknown = env.data.payload;
  const before = previous[type];
  if (before && env.data.version === before.version) {
    // An old writer's record: read with its own schema, then taken as this version's.
    const old = before.schema.safeParse(rawPayload);
    if (!old.success) return { ok: false, error: `bad ${type} version ${before.version} payload: ${describe(old.error)}` };
    rawPayload = before.upgrade(old.data);
  }
  // The next version's new optional fields are stripped here, so they never reach a decision.
  const payload = MESSAGES[type].schema.safeParse(rawPayload);
  if (!payload.success) return { ok: false, error: `bad ${type} payload: ${describe(payload.error)}` };
  if (payload.data.order_id !== env.data.order_id) {
    return { ok: false, error: "payload order_id differs from envelope order_id" };
  }
  // An upgraded record is this version's message from here on.
  const version = before && env.data.version === before.version ? MESSAGES[type].version : env.data.version;
  return { ok: true, message: { ...env.data, type, version, payload: payload.data } as Message };
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

/**
 * `message` as a writer pinned to previous versions writes it: for a type in `pinned`, the
 * previous version's envelope and payload (checked against that version's schema: a downgrade
 * that does not fit is a bug, thrown); any other message as it is.
 */
export function writtenAs(message: Message, pinned: ReadonlySet<MessageType>, previous: PreviousVersions = PREVIOUS_VERSIONS): Message {
  const before = pinned.has(message.type) ? previous[message.type] : undefined;
  if (!before) return message;
  const payload = before.schema.parse(before.downgrade(message.payload));
  // The envelope as written: its payload has the previous version's shape, which its readers expect.
  return { ...message, version: before.version, payload } as Message;
}

/** The topic a message type travels on, under the configured names. */
export const topicOf = (type: MessageType, topics: Topics): string => topics[MESSAGES[type].topic];

function describe(error: z.ZodError): string {
  const issue = error.issues[0];
  return issue ? `${issue.path.join(".") || "(root)"}: ${issue.message}` : "invalid";
}
