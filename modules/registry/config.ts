/** config/registry.yaml */
import { z } from "zod";
import { ModuleBaseSchema } from "../../src/config";
import { Cents } from "../../src/contracts";

export const RegistryConfigSchema = ModuleBaseSchema.extend({
  port: ModuleBaseSchema.shape.port.default(8000),
  consumer_group: z.string().min(1).default("registry"),
  /** A pending order older than this is rejected with reason `timeout`. */
  saga_deadline_seconds: z.coerce.number().min(0.1).max(86_400).default(30),
  /** The catalogue, inserted on first start only. */
  products: z
    .array(
      z.object({
        id: z.number().int().positive().max(2_147_483_647),
        sku: z.string().min(1).max(64),
        name: z.string().min(1).max(200),
        price_cents: Cents,
      }),
    )
    .default([]),
});
export type RegistryConfig = z.infer<typeof RegistryConfigSchema>;
