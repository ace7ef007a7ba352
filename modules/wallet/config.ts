/** config/wallet.yaml */
import { z } from "zod";
import { ModuleBaseSchema } from "../../src/config";
import { Cents } from "../../src/contracts";
import { IdempotencyKeyRetentionHours } from "../../src/db/idempotency-keys";

export const WalletConfigSchema = ModuleBaseSchema.extend({
  port: ModuleBaseSchema.shape.port.default(8001),
  consumer_group: z.string().min(1).default("wallet"),
  /** How long an `Idempotency-Key` of a deposit is remembered; the same key after that makes a new deposit. */
  idempotency_key_retention_hours: IdempotencyKeyRetentionHours,
  /** Starting balances, inserted on first start only. */
  wallets: z
    .array(z.object({ user_id: z.number().int().positive().max(2_147_483_647), balance_cents: Cents }))
    .default([]),
});
