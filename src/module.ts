/** The contract between the process wiring and a business module's one door. */
import type { z } from "zod";
import type { Bus } from "./bus/bus";
import type { RecordSigner } from "./bus/signing";
import type { ModuleName } from "./config";
import type { MessageType } from "./contracts";
import type { Database } from "./db/database";
import type { ErrorCodes } from "./errors";
import type { HealthCheck } from "./http/health";
import type { Router } from "./http/router";
import type { Logger } from "./log";
import type { MetricsRegistry } from "./metrics/registry";

/** What the process hands a module. */
export interface ModuleContext<C> {
  config: C;
  db: Database;
  bus: Bus;
  log: Logger;
  /** Base URLs of the modules this process serves, filled in as their HTTP services start listening. */
  siblings: Readonly<Partial<Record<ModuleName, string>>>;
  /** Signs the records the module publishes and checks those it consumes (BUS_SIGNING_KEY); absent or null: neither. */
  signing?: RecordSigner | null;
  /** Message types its outbox writes at their previous version (BUS_WRITE_PREVIOUS_VERSIONS); absent: none. */
  writePrevious?: ReadonlySet<MessageType>;
  /** The registry of the module's service app: the module registers its metric families here. */
  metrics: MetricsRegistry;
}

/** A module after init: its routes and its background work. */
export interface RunningModule {
  router: Router;
  /** Checks only /health/ready runs (e.g. the outbox backlog bound), besides the database and the bus. */
  readyChecks?: Record<string, HealthCheck>;
  /** Starts background loops (outbox relay, timers); called once the bus is started. */
  start(): Promise<void>;
  /** Stops background loops and waits for the work in flight. */
  stop(): Promise<void>;
}

/** A business module as the process sees it. */
export interface ShopModule<S extends z.ZodType = z.ZodType> {
  name: ModuleName;
  title: string;
  configSchema: S;
  /** Folder of this module's drizzle-kit migrations. */
  migrationsFolder: string;
  /** Every error code the module throws (declareErrors); its routes document them from the same declarations. */
  errors: ErrorCodes<string>;
  /** Migrated already: seeds, subscribes its consumers, builds its routes. */
  init(ctx: ModuleContext<z.infer<S>>): Promise<RunningModule>;
}
