/** The one envelope every message travels in, on any bus. */
import { z } from "zod";

/** Upper bound on a line's quantity, shared by the API and the messages. */
export const MAX_QUANTITY = 1000;

/** Integer money in minor units (cents). */
export const Cents = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** Envelope fields; `payload` is checked against the schema named by `type`. */
export const EnvelopeSchema = z.object({
  id: z.uuid(),
  type: z.string().min(1).max(100),
  version: z.number().int().positive(),
  occurred_at: z.iso.datetime({ offset: true }),
  order_id: z.uuid(),
  payload: z.unknown(),
});

/** The participant services that can name themselves in a message. */
export const ServiceName = z.enum(["registry", "wallet", "storage"]);
export type ServiceName = z.infer<typeof ServiceName>;
