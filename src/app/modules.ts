/** The business modules this process can mount, by name: each through its one door. */
import { registryModule } from "../../modules/registry";
import { storageModule } from "../../modules/storage";
import { walletModule } from "../../modules/wallet";
import type { ModuleName } from "../config";
import type { ShopModule } from "../module";

export const MODULES: Record<ModuleName, ShopModule> = {
  registry: registryModule,
  wallet: walletModule,
  storage: storageModule,
};
