/** Registry: catalogue and orders; it decides each order's final state. The module's one door. */
import { join } from "node:path";
import type { ShopModule } from "../../src/module";
import { setUpMessaging } from "../../src/outbox/messaging";
import { RegistryConfigSchema } from "./config";
import { REGISTRY_TOPICS, registryConsumers } from "./consumers";
import { createCatalogue } from "./catalogue";
import { registryRouter } from "./handlers";
import * as tables from "./schema";
import { rejectExpiredOrders, seedProducts } from "./service";

export const registryModule: ShopModule<typeof RegistryConfigSchema> = {
  name: "registry",
  title: "Shop registry",
  configSchema: RegistryConfigSchema,
  migrationsFolder: join(import.meta.dir, "../../drizzle/registry"),
  async init(ctx) {
    const { db, config, log } = ctx;
    await seedProducts(db, config.products);
    const messaging = setUpMessaging(ctx, tables, registryConsumers, REGISTRY_TOPICS);
    const deadlineMs = config.saga_deadline_seconds * 1000;
    const sweepEveryMs = Math.min(1000, Math.max(50, deadlineMs / 4));
    let sweeper: Timer | null = null;
    let sweeping: Promise<void> | null = null;
    const sweep = async () => {
      try {
        await rejectExpiredOrders(db, messaging.enqueue, deadlineMs);
      } catch (err) {
        log.warn("deadline sweep failed", { err });
      }
    };
    return {
      router: registryRouter(db, createCatalogue(db), messaging.enqueue),
      metrics: messaging.samples,
      async start() {
        await messaging.start();
        sweeper = setInterval(() => {
          sweeping ??= sweep().finally(() => (sweeping = null));
        }, sweepEveryMs);
      },
      async stop() {
        if (sweeper) clearInterval(sweeper);
        await sweeping;
        await messaging.stop();
      },
    };
  },
};
