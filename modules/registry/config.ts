/** config/registry.yaml */
import { z } from "zod";
import { ModuleBaseSchema } from "../../src/config";
import { Cents } from "../../src/contracts";

export const RegistryConfigSchema = ModuleBaseSchema.extend({
  port: ModuleBaseSchema.shape.port.default(8000),
  consumer_group: z.string().min(1).default("registry"),
  /** A pending order older than this is rejected with reason `timeout`. */
  saga_deadline_seconds: z.coerce.number().min(0.1).max(86_400).default(30),
  /** A participant's message about an order registry never made is answered (`unknown_order`) after this grace. */
  unknown_order_grace_ms: z.coerce.number().int().min(0).max(600_000).default(2000),
  /** A rejected order whose compensations are not all confirmed this long after the rejection is listed as stuck. */
  compensation_deadline_seconds: z.coerce.number().min(0.1).max(86_400).default(60),
  /** New orders wait while this many are pending (0: no limit), and are refused with 503 after `admission_wait_ms`. */
  max_pending_orders: z.coerce.number().int().min(0).default(1000),
  admission_wait_ms: z.coerce.number().int().min(0).max(60_000).default(5000),
  /** How long an `Idempotency-Key` of `POST /orders` is remembered; the same key after that places a new order. */
  idempotency_key_retention_hours: z.coerce.number().positive().max(8760).default(24),
  /** The live stream (`GET /live/events`): clients per process, and per client IP address (an IPv6 /64), past which a newcomer is refused unless a stuck client can be shed. */
  live_max_clients: z.coerce.number().int().min(1).max(100_000).default(200),
  live_max_clients_per_address: z.coerce.number().int().min(1).max(100_000).default(20),
  /** A live client with more than this not yet taken by its socket when a poll starts is dropped. */
  live_max_unsent_bytes: z.coerce.number().int().min(1024).max(1_073_741_824).default(1_048_576),
  /** A live client whose data waited this long without its socket taking all of it is dropped. */
  live_stall_timeout_ms: z.coerce.number().int().min(100).max(600_000).default(15_000),
  /** Where `GET /admin/audit` fetches wallet's and storage's reports when they are not served by this process. */
  wallet_url: z.url({ protocol: /^https?$/ }).default("http://127.0.0.1:8001"),
  storage_url: z.url({ protocol: /^https?$/ }).default("http://127.0.0.1:8002"),
  /** The catalogue, inserted on first start only. */
  products: z
    .array(
      z.object({
        id: z.number().int().positive().max(2_147_483_647),
        sku: z.string().min(1).max(64),
        name: z.string().min(1).max(200),
        // Bounded so that 50 lines of 1000 units stay exact in a JS number.
        price_cents: Cents.max(10_000_000_000),
      }),
    )
    .default([]),
});
