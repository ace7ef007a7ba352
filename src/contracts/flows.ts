/**
 * Who sends and who receives each message, in one table: the AsyncAPI document, docs/messages.md
 * and the test that compares them with the modules' consumers.ts and outboxes all read it.
 */

import { ServiceName } from "./envelope";
import { MESSAGES, type MessageType, type PayloadOf } from "./index";
import type { Topics } from "./topics";

/** A sample payload, shown in the AsyncAPI document (and checked against the zod schema by the tests). */
interface PayloadExample<T extends MessageType> {
  name: string;
  summary: string;
  payload: PayloadOf<T>;
}

/** One message type: what it means, which modules write it and which react to it (and why), samples. */
export interface MessageFlow<T extends MessageType> {
  title: string;
  summary: string;
  /** Module -> when it sends this message (through its outbox). */
  producers: Partial<Record<ServiceName, string>>;
  /** Module -> what its consumer does with it (a handler in its consumers.ts). */
  consumers: Partial<Record<ServiceName, string>>;
  examples: readonly PayloadExample<T>[];
}

const ORDER = "7d1f6c2e-3b4a-4c5d-8e9f-0a1b2c3d4e5f";

/** Every message type's senders and receivers; a new type in MESSAGES does not compile until it is listed here. */
export const MESSAGE_FLOWS: { [T in MessageType]: MessageFlow<T> } = {
  OrderCreated: {
    title: "Order created",
    summary: "Registry stored a pending order: wallet debits its total, storage reserves its items.",
    producers: {
      registry: "POST /orders stores the pending order and this message in one transaction.",
    },
    consumers: {
      wallet:
        "Debits the total once (one ledger row per order) and answers StepSucceeded, or OrderRejected (insufficient_funds, unknown_wallet).",
      storage: "Reserves every item or none and answers StepSucceeded, or OrderRejected (out_of_stock, unknown_product).",
    },
    examples: [
      {
        name: "two_items",
        summary: "An order of two keyboards and a mouse",
        payload: {
          order_id: ORDER,
          user_id: 42,
          items: [
            { product_id: 1, quantity: 2, unit_price_cents: 8999 },
            { product_id: 2, quantity: 1, unit_price_cents: 2999 },
          ],
          total_cents: 20997,
        },
      },
    ],
  },
  StepSucceeded: {
    title: "Step succeeded",
    summary: "A participant did its part of an order (wallet debited, storage reserved).",
    producers: {
      wallet: "After debiting the order's total, in the same transaction.",
      storage: "After reserving every item of the order, in the same transaction.",
    },
    consumers: {
      registry: "Notes the step on the order's timeline; once both participants succeeded, the order is completed.",
    },
    examples: [{ name: "wallet_debited", summary: "Wallet debited the order's total", payload: { order_id: ORDER, service: "wallet" } }],
  },
  OrderRejected: {
    title: "Order rejected",
    summary:
      "An order cannot go on. A participant's rejection is for registry; registry's own (service registry) decides the order and tells the participants to undo their parts.",
    producers: {
      registry:
        "Decides a pending order on a participant's first rejection (same reason), rejects a pending order past the saga deadline (timeout), or one a participant acted on that registry never made (unknown_order).",
      wallet: "The balance is short or the user has no wallet.",
      storage: "An item is out of stock or unknown.",
    },
    consumers: {
      registry:
        "A participant's rejection rejects the pending order (first reason wins) and is noted on the timeline; registry's own rejections are ignored.",
      wallet:
        "Registry's rejection only: refunds the order's debit once and answers OrderCompensated; a rejection that arrives first makes a later OrderCreated a no-op.",
      storage:
        "Registry's rejection only: releases the order's reservation once and answers OrderCompensated; a rejection that arrives first makes a later OrderCreated a no-op.",
    },
    examples: [
      {
        name: "wallet_insufficient_funds",
        summary: "Wallet rejects: the balance is short",
        payload: { order_id: ORDER, service: "wallet", reason: "insufficient_funds", message: "balance below 20997 cents" },
      },
      {
        name: "registry_decision",
        summary: "Registry rejects the order on wallet's word, for the participants to undo their parts",
        payload: { order_id: ORDER, service: "registry", reason: "insufficient_funds", message: "wallet: balance below 20997 cents" },
      },
    ],
  },
  OrderCompensated: {
    title: "Order compensated",
    summary: "A participant undid its part of an order registry rejected (refund, release) or had nothing to undo; sent once per order.",
    producers: {
      wallet: "After registry's OrderRejected: refunded the debit (amount in cents) or had none (nothing_to_undo).",
      storage: "After registry's OrderRejected: released the reservation (amount in units) or had none (nothing_to_undo).",
    },
    consumers: {
      registry: "Notes the undoing on the order's timeline; a rejected order is closed once both participants confirmed.",
    },
    examples: [
      {
        name: "wallet_refunded",
        summary: "Wallet refunded the debit",
        payload: { order_id: ORDER, service: "wallet", action: "refunded", amount: 20997 },
      },
      {
        name: "storage_nothing_to_undo",
        summary: "Storage had reserved nothing for the order",
        payload: { order_id: ORDER, service: "storage", action: "nothing_to_undo", amount: 0 },
      },
    ],
  },
};

/** What each topic (by its key in Topics) carries. */
export const CHANNEL_DESCRIPTIONS: Record<keyof Topics, string> = {
  new_orders: "Orders registry stored as pending, for the participants to act on.",
  rejected_orders:
    "Orders that cannot go on: a participant's rejection, and registry's decision that makes the participants undo their parts.",
  success: "What went right: a participant's step done (StepSucceeded) or its part of a rejected order undone (OrderCompensated).",
};

/** The modules of `side` for `type`, in the table's order. */
export const modulesOf = (type: MessageType, side: "producers" | "consumers"): ServiceName[] =>
  Object.keys(MESSAGE_FLOWS[type][side]) as ServiceName[];

/** docs/messages.md's tables (by message, then by module) under the topic names `topics`; the tests keep the file equal to it. */
export function messagesMarkdown(topics: Topics): string {
  const types = Object.keys(MESSAGE_FLOWS) as MessageType[];
  const code = (xs: string[]) => xs.map((x) => `\`${x}\``).join(", ");
  const byMessage = types.map(
    (t) =>
      `| \`${t}\` | \`${topics[MESSAGES[t].topic]}\` | ${modulesOf(t, "producers").join(", ")} | ${modulesOf(t, "consumers").join(", ")} | ${MESSAGE_FLOWS[t].summary} |`,
  );
  const byModule = ServiceName.options.map((m) => {
    const sends = types.filter((t) => modulesOf(t, "producers").includes(m));
    const receives = types.filter((t) => modulesOf(t, "consumers").includes(m));
    return `| ${m} | ${code(sends)} | ${code(receives)} |`;
  });
  return [
    "| message | topic | sent by | received by | meaning |",
    "|---|---|---|---|---|",
    ...byMessage,
    "",
    "| module | sends | receives |",
    "|---|---|---|",
    ...byModule,
  ].join("\n");
}
