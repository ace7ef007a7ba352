/** Messaging tables every module keeps in its own schema: outbox, inbox, dead letters. */
import { bigserial, index, integer, jsonb, type PgSchema, text, timestamp, uuid } from "drizzle-orm/pg-core";

/**
 * Outbox row states: `pending` until a relay claims it, `in_flight` while the bus has it but
 * has not confirmed it durable downstream, `published` once it has.
 */
const OUTBOX_STATES = ["pending", "in_flight", "published"] as const;

/** Declares the outbox, inbox and dead-letter tables inside `schema`. */
export function messagingTables(schema: PgSchema) {
  const outbox = schema.table(
    "outbox",
    {
      seq: bigserial("seq", { mode: "number" }).primaryKey(),
      id: uuid("id").notNull().unique(),
      topic: text("topic").notNull(),
      key: text("key").notNull(),
      type: text("type").notNull(),
      envelope: jsonb("envelope").notNull(),
      state: text("state", { enum: OUTBOX_STATES }).notNull().default("pending"),
      attempts: integer("attempts").notNull().default(0),
      lastError: text("last_error"),
      createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
      publishedAt: timestamp("published_at", { withTimezone: true }),
    },
    (t) => [index().on(t.state, t.seq)],
  );
  const inbox = schema.table(
    "inbox",
    {
      messageId: uuid("message_id").primaryKey(),
      type: text("type").notNull(),
      topic: text("topic").notNull(),
      processedAt: timestamp("processed_at", { withTimezone: true }).notNull().defaultNow(),
    },
    // Pruned by age.
    (t) => [index().on(t.processedAt)],
  );
  const deadLetters = schema.table("dead_letters", {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    topic: text("topic").notNull(),
    key: text("key").notNull(),
    value: text("value").notNull(),
    headers: jsonb("headers").notNull(),
    error: text("error").notNull(),
    receivedAt: timestamp("received_at", { withTimezone: true }).notNull().defaultNow(),
    /** Times an operator fed it back through the consumer. */
    redrives: integer("redrives").notNull().default(0),
    lastRedriveAt: timestamp("last_redrive_at", { withTimezone: true }),
    /** When a redrive applied it (or found it applied already); null while it is still dead. */
    resolvedAt: timestamp("resolved_at", { withTimezone: true }),
  });
  return { outbox, inbox, deadLetters };
}

/** The messaging tables of one module. */
export type MessagingTables = ReturnType<typeof messagingTables>;
