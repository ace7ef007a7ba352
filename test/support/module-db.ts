/** Unit-test plumbing for a module's rules: its own in-memory database and a capturing outbox. */
import { expect } from "bun:test";
import type { Message, OrderRejected } from "../../src/contracts";
import { type Database, type Executor, openDatabase } from "../../src/db/database";
import { DomainError } from "../../src/errors";
import { createLogger } from "../../src/log";
import { type Enqueue, type OutboxWriter, outboxWriter } from "../../src/messaging/outbox";
import type { MessagingTables } from "../../src/messaging/tables";
import type { ShopModule } from "../../src/module";
import { TOPICS } from "./shop-target";

/** Opens an in-memory PGlite with `module`'s migrations applied. */
export async function openModuleDatabase(module: ShopModule): Promise<Database> {
  const db = await openDatabase({ driver: "pglite", dataDir: null }, createLogger("silent"));
  await db.migrate(module.name, module.migrationsFolder);
  return db;
}

/**
 * An outbox writer for a one-statement change (`insert`), over the module's real outbox table
 * `tables.outbox`, that also records what it wrote.
 */
export function captureOutbox(tables: MessagingTables): { sent: Message[]; outbox: Pick<OutboxWriter, "insert"> } {
  const sent: Message[] = [];
  const writer = outboxWriter(tables, TOPICS, () => {});
  return {
    sent,
    outbox: {
      insert(messages) {
        const insert = writer.insert(messages);
        // Recorded once written: a statement that failed or rolled back sent nothing.
        return {
          sql: insert.sql,
          written: () => {
            sent.push(...messages);
            insert.written();
          },
        };
      },
    },
  };
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
export async function inTx(db: Database, fn: (tx: Executor, enqueue: Enqueue) => Promise<void>): Promise<Message[]> {
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

/** Awaits `promise` and returns the DomainError it rejects with; fails if it resolves. */
export async function domainError(promise: Promise<unknown>): Promise<DomainError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(DomainError);
    return err as DomainError;
  }
  throw new Error("expected a DomainError, but the call succeeded");
}

/** The payload of the one OrderRejected in `sent`; fails on anything else. */
export function onlyRejection(sent: Message[]): OrderRejected {
  expect(sent).toHaveLength(1);
  const [m] = sent;
  if (m?.type !== "OrderRejected") throw new Error(`expected OrderRejected, got ${m?.type}`);
  return m.payload;
}
