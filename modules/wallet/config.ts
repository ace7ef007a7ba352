/** config/wallet.yaml: wallet's settings, each key's meaning in its `.describe()` (--help and docs/configuration.md). */
import { z } from "zod";
import { ModuleBaseSchema } from "../../src/config";
import { Cents } from "../../src/contracts";
import { IdempotencyKeyRetentionHours } from "../../src/idempotency";

export const WalletConfigSchema = ModuleBaseSchema.extend({
  port: ModuleBaseSchema.shape.port.default(8001),
  consumer_group: z.string().min(1).default("wallet"),
  /** How long an `Idempotency-Key` of a deposit is remembered; the same key after that makes a new deposit. */
  idempotency_key_retention_hours: IdempotencyKeyRetentionHours
    // Worded for the three modules alike, so that docs/configuration.md lists the key once among the shared ones.
    .describe("how long an Idempotency-Key of POST /orders, a deposit or a receipt is remembered"),
  wallets: z
    .array(z.strictObject({ user_id: z.number().int().positive().max(2_147_483_647), balance_cents: Cents }))
    .default([])
    .describe("starting balances, inserted on first start only"),
});
