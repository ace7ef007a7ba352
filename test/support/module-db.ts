/** Unit-test plumbing for a module's rules: its own in-memory database and a capturing outbox. */
import type { Message, OrderRejected } from "../../src/contracts";
import { type Database, type Db, openDatabase } from "../../src/db/database";
import { createLogger } from "../../src/log";
import type { ShopModule } from "../../src/module";
import type { Enqueue } from "../../src/outbox/outbox";

/** Opens an in-memory PGlite with `module`'s migrations applied. */
export async function openModuleDatabase(module: ShopModule): Promise<Database> {
  const db = await openDatabase({ driver: "pglite", dataDir: null }, createLogger("silent"));
  await db.migrate(module.name, module.migrationsFolder);
  return db;
}

/** An enqueue that records what it would publish. */
export function capture(): { sent: Message[]; enqueue: Enqueue } {
  const sent: Message[] = [];
  return {
    sent,
    enqueue: async (_tx, message) => {
      sent.push(message);
    },
  };
}

/** Runs `fn` in one transaction with a capturing enqueue; returns what it would publish. */
export async function inTx(db: Database, fn: (tx: Db, enqueue: Enqueue) => Promise<void>): Promise<Message[]> {
  const { sent, enqueue } = capture();
  await db.transaction((tx) => fn(tx, enqueue));
  return sent;
}

/** An OrderRejected payload. */
export const rejection = (orderId: string, service: OrderRejected["service"], reason: OrderRejected["reason"]): OrderRejected => ({
  order_id: orderId,
  service,
  reason,
  message: `${service} says ${reason}`,
});
