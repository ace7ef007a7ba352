/** config/storage.yaml */
import { z } from "zod";
import { ModuleBaseSchema } from "../../src/config";
import { IdempotencyKeyRetentionHours } from "../../src/db/idempotency-keys";

export const StorageConfigSchema = ModuleBaseSchema.extend({
  port: ModuleBaseSchema.shape.port.default(8002),
  consumer_group: z.string().min(1).default("storage"),
  /** How long an `Idempotency-Key` of a stock receipt is remembered; the same key after that makes a new receipt. */
  idempotency_key_retention_hours: IdempotencyKeyRetentionHours,
  /** Starting stock, inserted on first start only. */
  stock: z
    .array(
      z.object({
        product_id: z.number().int().positive().max(2_147_483_647),
        available: z.number().int().min(0).max(1_000_000_000),
      }),
    )
    .default([]),
});
