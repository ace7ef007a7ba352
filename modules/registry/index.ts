/** Registry: catalogue and orders; it decides each order's final state. The module's one door. */
import { join } from "node:path";
import type { z } from "zod";
import { setUpMessaging } from "../../src/messaging/messaging";
import type { ModuleContext, ShopModule } from "../../src/module";
import { createAdmission } from "./admission";
import { createCatalogue, seedProducts } from "./catalogue";
import { RegistryConfigSchema } from "./config";
import { REGISTRY_TOPICS, registryConsumers } from "./consumers";
import { REGISTRY_ERRORS } from "./errors";
import { registryAdminRouter, registryAuditRouter, registryRouter } from "./handlers";
import { idempotencyKeyPruneJob } from "./idempotency";
import { createLivePage } from "./live";
import { registryMetrics } from "./metrics";
import * as tables from "./schema";
import { sweepLoop } from "./sweepers";

export const registryModule: ShopModule<typeof RegistryConfigSchema> = {
  name: "registry",
  title: "Shop registry",
  configSchema: RegistryConfigSchema,
  migrationsFolder: join(import.meta.dir, "../../drizzle/registry"),
  errors: REGISTRY_ERRORS,
  async init(ctx) {
    const { db, config, log } = ctx;
    await seedProducts(db, config.products);
    // Expired Idempotency-Keys are pruned with the messaging tables (a key seen again after that places a new order).
    const keyRetention = idempotencyKeyPruneJob(config.idempotency_key_retention_hours * 3_600_000);
    const sagaEnded = registryMetrics(ctx.metrics, db);
    const messaging = setUpMessaging(ctx, tables, registryConsumers(sagaEnded, log.child("saga")), REGISTRY_TOPICS, [keyRetention]);
    const sweeps = sweepLoop({ db, enqueue: messaging.enqueue, config, log, sagaEnded });
    // Siblings in this process first: their ports may be chosen at start.
    const peers = () => ({ wallet: ctx.siblings.wallet ?? config.wallet_url, storage: ctx.siblings.storage ?? config.storage_url });
    const live = createLivePage({ db, log, metrics: ctx.metrics, peers, config });
    return {
      router: registryRoutes(ctx, messaging, peers).route("/", live.router),
      readyChecks: { outbox: messaging.ready },
      async start() {
        await messaging.start();
        sweeps.start();
      },
      async stop() {
        await sweeps.stop();
        await live.stop();
        await messaging.stop();
      },
    };
  },
};

/** The registry's routes but the live page's: orders and catalogue, admin, messaging admin, audit. */
function registryRoutes(
  { db, config }: ModuleContext<z.infer<typeof RegistryConfigSchema>>,
  messaging: ReturnType<typeof setUpMessaging>,
  peers: () => { wallet: string; storage: string },
) {
  const audit = registryAuditRouter(
    db,
    {
      deadlineSeconds: config.saga_deadline_seconds,
      compensationDeadlineSeconds: config.compensation_deadline_seconds,
      unknownOrderGraceSeconds: config.unknown_order_grace_ms / 1000,
    },
    peers,
  );
  const admin = registryAdminRouter(db, {
    deadlineMs: config.saga_deadline_seconds * 1000,
    compensationMs: config.compensation_deadline_seconds * 1000,
  });
  return registryRouter(
    db,
    createCatalogue(db),
    createAdmission(db, { maxPending: config.max_pending_orders, waitMs: config.admission_wait_ms }),
    messaging.outbox,
  )
    .route("/", admin)
    .route("/", messaging.admin)
    .route("/", audit);
}
