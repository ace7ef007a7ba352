/** config/storage.yaml: storage's settings, each key's meaning in its `.describe()` (--help and docs/configuration.md). */
import { z } from "zod";
import { ModuleBaseSchema } from "../../src/config";
import { IdempotencyKeyRetentionHours } from "../../src/idempotency";

export const StorageConfigSchema = ModuleBaseSchema.extend({
  port: ModuleBaseSchema.shape.port.default(8002),
  consumer_group: z.string().min(1).default("storage"),
  /** How long an `Idempotency-Key` of a stock receipt is remembered; the same key after that makes a new receipt. */
  idempotency_key_retention_hours: IdempotencyKeyRetentionHours
    // Worded for the three modules alike, so that docs/configuration.md lists the key once among the shared ones.
    .describe("how long an Idempotency-Key of POST /orders, a deposit or a receipt is remembered"),
  stock: z
    .array(
      z.strictObject({
        product_id: z.number().int().positive().max(2_147_483_647),
        available: z.number().int().min(0).max(1_000_000_000),
      }),
    )
    .default([])
    .describe("starting stock, inserted on first start only"),
});
