/** Writing to the outbox: a message joins the transaction of the change that implies it. */
import { type Message, topicOf } from "../contracts";
import type { Topics } from "../config";
import { afterCommit, type Db } from "../db/database";
import { currentRequestId, outsideRequest } from "../request-context";
import type { MessagingTables } from "./tables";

/** Something that stages messages for publication inside a transaction. */
export type Enqueue = (tx: Db, message: Message) => Promise<void>;

/** A module's outbox. */
export interface OutboxWriter {
  /** Writes `message` in `tx`; the relay is woken once `tx` commits. */
  enqueue: Enqueue;
  /** An enqueue that only collects, and `flush`, which writes what it collected in one statement. */
  staging(): { enqueue: Enqueue; flush(tx: Db): Promise<void> };
}

/** The outbox of `tables` under the configured topic names; `committed` wakes its relay. */
export function outboxWriter(tables: MessagingTables, topics: Topics, committed: () => void): OutboxWriter {
  const row = (message: Message) => ({
    id: message.id,
    topic: topicOf(message.type, topics),
    key: message.order_id,
    type: message.type,
    envelope: message,
  });
  // The relay pass a commit wakes serves every request: it must not run under this one's id.
  const wake = () => outsideRequest(committed);
  const write = async (tx: Db, messages: Message[]) => {
    if (messages.length === 0) return;
    await tx.insert(tables.outbox).values(messages.map(row));
    afterCommit(tx, wake);
  };
  return {
    enqueue: (tx, message) => write(tx, [withRequest(message)]),
    staging() {
      const staged: Message[] = [];
      return {
        enqueue: async (_tx, message) => void staged.push(withRequest(message)),
        flush: (tx) => write(tx, staged.splice(0)),
      };
    },
  };
}

/** `message` with the request id being served (read when it is enqueued), unless it names one already. */
function withRequest(message: Message): Message {
  const requestId = currentRequestId();
  return requestId === undefined || message.request_id !== undefined ? message : { ...message, request_id: requestId };
}
