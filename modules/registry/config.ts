/** config/registry.yaml: registry's settings, each key's meaning in its `.describe()` (--help and docs/configuration.md). */
import { z } from "zod";
import { ModuleBaseSchema } from "../../src/config";
import { Cents } from "../../src/contracts";

/** Where `trace_url` takes an order's trace id (the live page puts it there). */
const TRACE_ID_PLACEHOLDER = "{trace_id}";

export const RegistryConfigSchema = ModuleBaseSchema.extend({
  port: ModuleBaseSchema.shape.port.default(8000),
  consumer_group: z.string().min(1).default("registry"),
  saga_deadline_seconds: z.coerce
    .number()
    .min(0.1)
    .max(86_400)
    .default(30)
    .describe("a pending order older than this is rejected (reason timeout)"),
  unknown_order_grace_ms: z.coerce
    .number()
    .int()
    .min(0)
    .max(600_000)
    .default(2000)
    .describe("a message about an order registry never made is answered (unknown_order) after this"),
  compensation_deadline_seconds: z.coerce
    .number()
    .min(0.1)
    .max(86_400)
    .default(60)
    .describe("a rejected order not compensated this long after is listed as stuck"),
  max_pending_orders: z.coerce.number().int().min(0).default(1000).describe("new orders wait while this many are pending (0: no limit)"),
  admission_wait_ms: z.coerce
    .number()
    .int()
    .min(0)
    .max(60_000)
    .default(5000)
    .describe("how long a new order waits for room before 503 overloaded"),
  /** How long an `Idempotency-Key` of `POST /orders` is remembered; the same key after that places a new order. */
  idempotency_key_retention_hours: z.coerce
    .number()
    .positive()
    .max(8760)
    .default(24)
    // Worded for the three modules alike, so that docs/configuration.md lists the key once among the shared ones.
    .describe("how long an Idempotency-Key of POST /orders, a deposit or a receipt is remembered"),
  live_max_clients: z.coerce
    .number()
    .int()
    .min(1)
    .max(100_000)
    .default(200)
    .describe("live streams (GET /live/events) per process; past it a newcomer gets 503 unless a stuck client is shed"),
  live_max_clients_per_address: z.coerce
    .number()
    .int()
    .min(1)
    .max(100_000)
    .default(20)
    .describe("live streams from one client IP address (an IPv6 /64); past it 429 unless one of them is stuck"),
  live_max_unsent_bytes: z.coerce
    .number()
    .int()
    .min(1024)
    .max(1_073_741_824)
    .default(1_048_576)
    .describe("a live client with more than this waiting for its socket when a poll starts is dropped"),
  live_stall_timeout_ms: z.coerce
    .number()
    .int()
    .min(100)
    .max(600_000)
    .default(15_000)
    .describe("a live client whose data waited this long without its socket taking it all is dropped"),
  trace_url: z
    .url({ protocol: /^https?$/, message: "expected an http:// or https:// URL" })
    .refine((url) => url.split(TRACE_ID_PLACEHOLDER).length === 2, {
      message: `expected ${TRACE_ID_PLACEHOLDER} exactly once, where the trace id goes`,
    })
    .optional()
    .or(z.literal("").transform(() => undefined))
    .describe(
      `a trace viewer's URL with ${TRACE_ID_PLACEHOLDER} in it (Jaeger: http://localhost:16686/trace/${TRACE_ID_PLACEHOLDER}); the live page links each traced order there`,
    ),
  wallet_url: z
    .url({ protocol: /^https?$/ })
    .default("http://127.0.0.1:8001")
    .describe("wallet's URL for GET /admin/audit, when wallet runs elsewhere"),
  storage_url: z
    .url({ protocol: /^https?$/ })
    .default("http://127.0.0.1:8002")
    .describe("storage's URL for GET /admin/audit, when storage runs elsewhere"),
  products: z
    .array(
      z.strictObject({
        id: z.number().int().positive().max(2_147_483_647),
        sku: z.string().min(1).max(64),
        name: z.string().min(1).max(200),
        // Bounded so that 50 lines of 1000 units stay exact in a JS number.
        price_cents: Cents.max(10_000_000_000),
      }),
    )
    .default([])
    .describe("the catalogue, inserted on first start only"),
});
