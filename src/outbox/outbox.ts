/** Writing to the outbox: a message joins the transaction of the change that implies it. */
import { type Message, topicOf } from "../contracts";
import type { Topics } from "../config";
import type { Db } from "../db/database";
import type { MessagingTables } from "./tables";

/** Something that stages messages for publication inside a transaction. */
export type Enqueue = (tx: Db, message: Message) => Promise<void>;

/** Returns an enqueue function writing to this module's outbox under the configured topics. */
export function outboxWriter(tables: MessagingTables, topics: Topics): Enqueue {
  return async (tx, message) => {
    await tx.insert(tables.outbox).values({
      id: message.id,
      topic: topicOf(message.type, topics),
      key: message.order_id,
      type: message.type,
      envelope: message,
    });
  };
}
