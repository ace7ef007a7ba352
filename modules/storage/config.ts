/** config/storage.yaml */
import { z } from "zod";
import { ModuleBaseSchema } from "../../src/config";

export const StorageConfigSchema = ModuleBaseSchema.extend({
  port: ModuleBaseSchema.shape.port.default(8002),
  consumer_group: z.string().min(1).default("storage"),
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
