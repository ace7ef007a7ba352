/** Storage: stock per product. The module's one door. */
import { join } from "node:path";
import type { ShopModule } from "../../src/module";
import { setUpMessaging } from "../../src/outbox/messaging";
import { StorageConfigSchema } from "./config";
import { STORAGE_TOPICS, storageConsumers } from "./consumers";
import { storageRouter } from "./handlers";
import * as tables from "./schema";
import { seedStock } from "./service";

export const storageModule: ShopModule<typeof StorageConfigSchema> = {
  name: "storage",
  title: "Shop storage",
  configSchema: StorageConfigSchema,
  migrationsFolder: join(import.meta.dir, "../../drizzle/storage"),
  async init(ctx) {
    await seedStock(ctx.db, ctx.config.stock);
    const messaging = setUpMessaging(ctx, tables, storageConsumers, STORAGE_TOPICS);
    return {
      router: storageRouter(ctx.db).route("/", messaging.admin),
      readyChecks: { outbox: messaging.ready },
      start: messaging.start,
      stop: messaging.stop,
    };
  },
};
