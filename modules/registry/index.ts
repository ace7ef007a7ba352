/** Registry: catalogue and orders; it decides each order's final state. The module's one door. */
import { join } from "node:path";
import type { ShopModule } from "../../src/module";
import { setUpMessaging } from "../../src/outbox/messaging";
import { RegistryConfigSchema } from "./config";
import { REGISTRY_TOPICS, registryConsumers } from "./consumers";
import { createAdmission } from "./admission";
import { createCatalogue } from "./catalogue";
import { registryRouter } from "./handlers";
import { idempotencyKeyPruneJob } from "./idempotency";
import * as tables from "./schema";
import { nextExpiryInMs, rejectExpiredOrders, seedProducts } from "./service";

export const registryModule: ShopModule<typeof RegistryConfigSchema> = {
  name: "registry",
  title: "Shop registry",
  configSchema: RegistryConfigSchema,
  migrationsFolder: join(import.meta.dir, "../../drizzle/registry"),
  async init(ctx) {
    const { db, config, log } = ctx;
    await seedProducts(db, config.products);
    // Expired Idempotency-Keys are pruned with the messaging tables (a key seen again after that places a new order).
    const keyRetention = idempotencyKeyPruneJob(config.idempotency_key_retention_hours * 3_600_000);
    const messaging = setUpMessaging(ctx, tables, registryConsumers, REGISTRY_TOPICS, [keyRetention]);
    const deadlineMs = config.saga_deadline_seconds * 1000;
    // With nothing pending, look again this often (orders placed by any process); else wake when the oldest is due.
    const idleCheckMs = Math.min(5000, Math.max(50, deadlineMs / 2));
    let stopped = false;
    let sweeper: Timer | null = null;
    let sweeping: Promise<void> | null = null;
    const sweep = async (): Promise<number> => {
      try {
        const due = await nextExpiryInMs(db, deadlineMs);
        if (due === null) return idleCheckMs;
        if (due > 0) return Math.min(due, idleCheckMs);
        await rejectExpiredOrders(db, messaging.enqueue, deadlineMs);
        return 0;
      } catch (err) {
        log.warn("deadline sweep failed", { err });
        return idleCheckMs;
      }
    };
    const schedule = (ms: number) => {
      if (stopped) return;
      sweeper = setTimeout(() => {
        sweeping = sweep().then(schedule, () => schedule(idleCheckMs));
      }, Math.max(ms, 20));
    };
    return {
      router: registryRouter(
        db,
        createCatalogue(db),
        createAdmission(db, { maxPending: config.max_pending_orders, waitMs: config.admission_wait_ms }),
        messaging.enqueue,
      ).route("/", messaging.admin),
      metrics: messaging.samples,
      async start() {
        await messaging.start();
        schedule(0);
      },
      async stop() {
        stopped = true;
        if (sweeper) clearTimeout(sweeper);
        await sweeping;
        await messaging.stop();
      },
    };
  },
};
