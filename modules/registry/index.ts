/** Registry: catalogue and orders; it decides each order's final state. The module's one door. */
import { join } from "node:path";
import type { ShopModule } from "../../src/module";
import { setUpMessaging } from "../../src/messaging/messaging";
import { periodic } from "../../src/work-counters";
import { RegistryConfigSchema } from "./config";
import { REGISTRY_ERRORS } from "./errors";
import { REGISTRY_TOPICS, registryConsumers } from "./consumers";
import { createAdmission } from "./admission";
import { createCatalogue, seedProducts } from "./catalogue";
import { registryAdminRouter, registryAuditRouter, registryRouter } from "./handlers";
import { idempotencyKeyPruneJob } from "./idempotency";
import { createLivePage } from "./live";
import { registryMetrics } from "./metrics";
import * as tables from "./schema";
import { nextExpiryInMs, rejectExpiredOrders, rejectUnknownOrders } from "./sweepers";

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
    const deadlineMs = config.saga_deadline_seconds * 1000;
    // With nothing pending, look again this often (orders placed by any process); else wake when the oldest is due.
    const idleCheckMs = Math.min(5000, Math.max(50, deadlineMs / 2));
    let stopped = false;
    let sweeper: Timer | null = null;
    let sweeping: Promise<void> | null = null;
    const sweep = async (): Promise<number> => {
      try {
        for (const id of await rejectUnknownOrders(db, messaging.enqueue, config.unknown_order_grace_ms)) {
          log.warn("unknown order rejected: a participant acted on an order registry never made", { order_id: id });
        }
        const due = await nextExpiryInMs(db, deadlineMs);
        if (due === null) return idleCheckMs;
        if (due > 0) return Math.min(due, idleCheckMs);
        for (const id of await rejectExpiredOrders(db, messaging.enqueue, deadlineMs, sagaEnded)) {
          log.warn("order timed out", { order_id: id, deadline_seconds: config.saga_deadline_seconds });
        }
        return 0;
      } catch (err) {
        log.warn("deadline sweep failed", { err });
        return idleCheckMs;
      }
    };
    const schedule = (ms: number) => {
      if (stopped) return;
      sweeper = setTimeout(() => periodic(() => {
        sweeping = sweep().then(schedule, () => schedule(idleCheckMs));
      }), Math.max(ms, 20));
    };
    // Siblings in this process first: their ports may be chosen at start.
    const peers = () => ({ wallet: ctx.siblings.wallet ?? config.wallet_url, storage: ctx.siblings.storage ?? config.storage_url });
    const audit = registryAuditRouter(
      db,
      {
        deadlineSeconds: config.saga_deadline_seconds,
        compensationDeadlineSeconds: config.compensation_deadline_seconds,
        unknownOrderGraceSeconds: config.unknown_order_grace_ms / 1000,
      },
      peers,
    );
    const live = createLivePage({ db, log, metrics: ctx.metrics, peers, config });
    return {
      router: registryRouter(
        db,
        createCatalogue(db),
        createAdmission(db, { maxPending: config.max_pending_orders, waitMs: config.admission_wait_ms }),
        messaging.outbox,
      ).route("/", registryAdminRouter(db, { deadlineMs, compensationMs: config.compensation_deadline_seconds * 1000 })).route("/", messaging.admin).route("/", audit).route("/", live.router),
      readyChecks: { outbox: messaging.ready },
      async start() {
        await messaging.start();
        schedule(0);
      },
      async stop() {
        stopped = true;
        if (sweeper) clearTimeout(sweeper);
        await sweeping;
        await live.stop();
        await messaging.stop();
      },
    };
  },
};
