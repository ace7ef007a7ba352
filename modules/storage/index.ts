/** Storage: stock per product. The module's one door. */
import { join } from "node:path";
import { idempotencyKeyPruneJob } from "../../src/idempotency";
import { setUpMessaging } from "../../src/messaging/messaging";
import type { ShopModule } from "../../src/module";
import { rejectedOrdersPruneJob } from "../../src/saga/rejections";
import { StorageConfigSchema } from "./config";
import { STORAGE_TOPICS, storageConsumers } from "./consumers";
import { STORAGE_ERRORS } from "./errors";
import { storageRouter } from "./handlers";
import * as tables from "./schema";
import { seedStock } from "./service";

export const storageModule: ShopModule<typeof StorageConfigSchema> = {
  name: "storage",
  title: "Shop storage",
  configSchema: StorageConfigSchema,
  migrationsFolder: join(import.meta.dir, "../../drizzle/storage"),
  errors: STORAGE_ERRORS,
  async init(ctx) {
    await seedStock(ctx.db, ctx.config.stock);
    // Expired Idempotency-Keys are pruned with the messaging tables (a key seen again after that makes a new receipt).
    const keyRetention = idempotencyKeyPruneJob(tables.idempotencyKeys, ctx.config.idempotency_key_retention_hours * 3_600_000);
    // Remembered rejections are kept as long as the inbox keeps a message id (src/saga/rejections.ts).
    const rejections = rejectedOrdersPruneJob(tables.rejectedOrders, ctx.config.inbox_retention_hours);
    const messaging = setUpMessaging(ctx, tables, storageConsumers, STORAGE_TOPICS, [keyRetention, rejections]);
    return {
      router: storageRouter(ctx.db).route("/", messaging.admin),
      readyChecks: { outbox: messaging.ready },
      start: messaging.start,
      stop: messaging.stop,
    };
  },
};
