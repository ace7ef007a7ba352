/** The one envelope every message travels in, on any bus. */
import { z } from "zod";

/** Upper bound on a line's quantity, shared by the API and the messages. */
export const MAX_QUANTITY = 1000;

/** Integer money in minor units (cents). */
export const Cents = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** What a request id may look like (an incoming X-Request-Id, a message's request_id); anything else is replaced or dropped. */
export const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
const RequestId = z.string().regex(REQUEST_ID_PATTERN);

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
    .describe("The X-Request-Id of the POST /orders that started this order's saga, passed on by every message that follows (absent on older records; a malformed one is dropped, not dead-lettered)."),
  payload: z.unknown(),
});

/** The participant services that can name themselves in a message. */
export const ServiceName = z.enum(["registry", "wallet", "storage"]);
export type ServiceName = z.infer<typeof ServiceName>;
