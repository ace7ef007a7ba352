/** The one envelope every message travels in, on any bus. */
import { z } from "zod";

/** Upper bound on a line's quantity, shared by the API and the messages. */
export const MAX_QUANTITY = 1000;

/** Integer money in minor units (cents). */
export const Cents = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** What a request id may look like (an incoming X-Request-Id, a message's request_id); anything else is replaced or dropped. */
export const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
const RequestId = z.string().regex(REQUEST_ID_PATTERN);

/** A W3C Trace Context `traceparent` (version 00): version, trace id, parent span id, flags, in lowercase hex. */
const TRACEPARENT_PATTERN = /^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$/;
/** A W3C `tracestate`: up to 32 comma-separated `key=value` members, 512 characters at most, printable ASCII. */
const TRACESTATE_PATTERN = /^[\x20-\x7e]{1,512}$/;

/** Envelope fields; `payload` is checked against the schema named by `type`. */
export const EnvelopeSchema = z.object({
  id: z.uuid(),
  type: z.string().min(1).max(100),
  version: z.number().int().positive(),
  occurred_at: z.iso.datetime({ offset: true }),
  order_id: z.uuid(),
  /** The HTTP request that set the order going, passed on by every message it leads to (absent on older records). */
  request_id: RequestId.optional()
    .catch(undefined)
    .describe(
      "The X-Request-Id of the POST /orders that started this order's saga, passed on by every message that follows (absent on older records; a malformed one is dropped, not dead-lettered).",
    ),
  /** The span that wrote the message (src/tracing): a consumer's span continues its trace (absent when tracing is off). */
  traceparent: z
    .string()
    .regex(TRACEPARENT_PATTERN)
    .optional()
    .catch(undefined)
    .describe(
      "W3C Trace Context traceparent of the span that wrote this message; the consumer's span continues that trace (absent when tracing is off; a malformed one is dropped, not dead-lettered).",
    ),
  /** Vendor trace state passed along with `traceparent`. */
  tracestate: z
    .string()
    .regex(TRACESTATE_PATTERN)
    .optional()
    .catch(undefined)
    .describe("W3C Trace Context tracestate travelling with traceparent (absent unless a tracer set one)."),
  payload: z.unknown(),
});

/** The participant services that can name themselves in a message. */
export const ServiceName = z.enum(["registry", "wallet", "storage"]);
export type ServiceName = z.infer<typeof ServiceName>;
