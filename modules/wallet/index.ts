/** Wallet: users' balances. The module's one door. */
import { join } from "node:path";
import { idempotencyKeyPruneJob } from "../../src/idempotency";
import { setUpMessaging } from "../../src/messaging/messaging";
import type { ShopModule } from "../../src/module";
import { rejectedOrdersPruneJob } from "../../src/saga/rejections";
import { WalletConfigSchema } from "./config";
import { WALLET_TOPICS, walletConsumers } from "./consumers";
import { WALLET_ERRORS } from "./errors";
import { walletRouter } from "./handlers";
import * as tables from "./schema";
import { seedWallets } from "./service";

export const walletModule: ShopModule<typeof WalletConfigSchema> = {
  name: "wallet",
  title: "Shop wallet",
  configSchema: WalletConfigSchema,
  migrationsFolder: join(import.meta.dir, "../../drizzle/wallet"),
  errors: WALLET_ERRORS,
  async init(ctx) {
    await seedWallets(ctx.db, ctx.config.wallets);
    // Expired Idempotency-Keys are pruned with the messaging tables (a key seen again after that makes a new deposit).
    const keyRetention = idempotencyKeyPruneJob(tables.idempotencyKeys, ctx.config.idempotency_key_retention_hours * 3_600_000);
    // Remembered rejections are kept as long as the inbox keeps a message id (src/saga/rejections.ts).
    const rejections = rejectedOrdersPruneJob(tables.rejectedOrders, ctx.config.inbox_retention_hours);
    const messaging = setUpMessaging(ctx, tables, walletConsumers, WALLET_TOPICS, [keyRetention, rejections]);
    return {
      router: walletRouter(ctx.db).route("/", messaging.admin),
      readyChecks: { outbox: messaging.ready },
      start: messaging.start,
      stop: messaging.stop,
    };
  },
};
