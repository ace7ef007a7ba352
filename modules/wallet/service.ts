/** Wallet's rules: deposit, debit an order, refund a rejected one. No HTTP, no bus details. */
import { and, asc, desc, eq, type SQL, sql } from "drizzle-orm";
import { createMessage, type Message, type OrderCreated, type OrderRejected } from "../../src/contracts";
import { anyOf, insertMany, runAll, updateMany } from "../../src/db/bulk";
import type { Database, Executor } from "../../src/db/database";
import { rowsOf } from "../../src/db/rows";
import { InvariantError } from "../../src/errors";
import { answerOnce, type KeyedRequest } from "../../src/idempotency";
import { type Enqueue, withCause } from "../../src/messaging/outbox";
import { rememberRejection } from "../../src/saga/rejections";
import { compensationDone } from "../../src/tracing/spans";
import { WALLET_ERRORS } from "./errors";
import { idempotencyKeys, ledger, rejectedOrders, wallets } from "./schema";

/** Ledger rows returned with a wallet, newest first. */
const LEDGER_PAGE = 50;

/** A wallet as the API shows it. */
export interface WalletView {
  user_id: number;
  balance_cents: number;
  updated_at: string;
}

const view = (w: typeof wallets.$inferSelect): WalletView => ({
  user_id: w.userId,
  balance_cents: w.balanceCents,
  updated_at: w.updatedAt.toISOString(),
});

/** Inserts starting balances that are not there yet. */
export async function seedWallets(db: Database, seed: { user_id: number; balance_cents: number }[]) {
  if (seed.length === 0) return;
  await db.transaction(async (tx) => {
    const inserted = await tx
      .insert(wallets)
      .values(seed.map((s) => ({ userId: s.user_id, balanceCents: s.balance_cents })))
      .onConflictDoNothing()
      .returning();
    if (inserted.length === 0) return;
    await tx.insert(ledger).values(
      inserted.map((w) => ({
        userId: w.userId,
        kind: "deposit" as const,
        amountCents: w.balanceCents,
        balanceAfterCents: w.balanceCents,
      })),
    );
  });
}

/** Every wallet, by user id. */
export async function listWallets(db: Database): Promise<WalletView[]> {
  const rows = await db.read((q) => q.select().from(wallets).orderBy(asc(wallets.userId)));
  return rows.map(view);
}

/** One wallet with its latest ledger rows; throws unknown_wallet. */
export async function getWallet(db: Database, userId: number) {
  return db.read(async (q) => {
    const [wallet] = await q.select().from(wallets).where(eq(wallets.userId, userId));
    if (!wallet) throw WALLET_ERRORS.error("unknown_wallet", `no wallet for user ${userId}`, "user_id");
    const rows = await q.select().from(ledger).where(eq(ledger.userId, userId)).orderBy(desc(ledger.id)).limit(LEDGER_PAGE);
    return {
      ...view(wallet),
      ledger: rows.map((r) => ({
        id: r.id,
        kind: r.kind,
        amount_cents: r.amountCents,
        balance_after_cents: r.balanceAfterCents,
        order_id: r.orderId,
        created_at: r.createdAt.toISOString(),
      })),
    };
  });
}

/** Balances stay exact in a JS number. */
const MAX_BALANCE_CENTS = Number.MAX_SAFE_INTEGER;

/**
 * Adds money to a user's wallet, opening the wallet on the first deposit. With `keyed`, the key
 * is claimed first in the same transaction and the answer stored with the deposit: a key answered
 * already throws AlreadyAnswered (nothing written), one used for another body idempotency_key_reused.
 */
export async function deposit(db: Database, userId: number, amountCents: number, keyed?: KeyedRequest): Promise<WalletView> {
  return db.transaction((tx) => answerOnce(tx, idempotencyKeys, keyed, 201, () => addToBalance(tx, userId, amountCents)));
}

/** The deposit itself, in `tx`: refused with balance_limit if the balance would leave exact JS numbers. */
async function addToBalance(tx: Executor, userId: number, amountCents: number): Promise<WalletView> {
  const [current] = await tx.select({ balance: wallets.balanceCents }).from(wallets).where(eq(wallets.userId, userId)).for("update");
  if ((current?.balance ?? 0) + amountCents > MAX_BALANCE_CENTS) {
    throw WALLET_ERRORS.error("balance_limit", "the balance would exceed its limit", "amount_cents");
  }
  const [wallet] = await tx
    .insert(wallets)
    .values({ userId, balanceCents: amountCents })
    .onConflictDoUpdate({
      target: wallets.userId,
      set: { balanceCents: sql`${wallets.balanceCents} + ${amountCents}`, updatedAt: new Date() },
    })
    .returning();
  if (!wallet) throw new InvariantError("deposit returned no row");
  await tx.insert(ledger).values({
    userId,
    kind: "deposit",
    amountCents,
    balanceAfterCents: wallet.balanceCents,
  });
  return view(wallet);
}

/** OrderCreated: debit the total once, or reject the order (debitOrders with one order). */
export async function debitOrder(tx: Executor, enqueue: Enqueue, order: OrderCreated): Promise<void> {
  await runAll(tx, await debitOrders(tx, enqueue, [{ order, cause: {} }]));
}

/** A run of OrderCreated messages (see debitOrders). */
type Created = { order: OrderCreated; cause: Pick<Message, "request_id"> };

/**
 * OrderCreated, many at once: debit each order's total once, in delivery order, or reject it,
 * as debitOrder would one by one. One statement reads (and locks, in user order) the wallets and
 * finds the orders already debited or rejected; the balances are worked out here; the writes (the
 * balances, the ledger rows and the rejections) come back for the consumer to run in one statement.
 */
export async function debitOrders(tx: Executor, enqueue: Enqueue, run: Created[]): Promise<SQL[]> {
  const orderIds = [...new Set(run.map((c) => c.order.order_id))];
  const users = [...new Set(run.map((c) => c.order.user_id))].sort((a, b) => a - b);
  const read = rowsOf(
    await tx.execute(sql`with w as (
        select ${wallets.userId} as user_id, ${wallets.balanceCents} as balance from ${wallets} where ${anyOf(wallets.userId, users, "integer")} order by ${wallets.userId} for update
      ), d as (
        select ${rejectedOrders.orderId} as order_id from ${rejectedOrders} where ${anyOf(rejectedOrders.orderId, orderIds, "uuid")}
        union select ${ledger.orderId} from ${ledger} where ${anyOf(ledger.orderId, orderIds, "uuid")} and ${ledger.kind} = 'debit'
      )
      select user_id, balance, null::uuid as order_id from w union all select null, null, order_id from d`),
  );
  const balances = new Map<number, number>();
  const decided = new Set<string>();
  for (const r of read) {
    if (r.order_id === null) balances.set(Number(r.user_id), Number(r.balance));
    else decided.add(String(r.order_id));
  }
  const touched = new Set<number>();
  const debits: (typeof ledger.$inferInsert)[] = [];
  const rejections: (typeof rejectedOrders.$inferInsert)[] = [];
  for (const { order, cause } of run) {
    const orderId = order.order_id;
    // Debited or rejected already (before, or earlier in this run under another message id): nothing to do.
    if (decided.has(orderId)) continue;
    decided.add(orderId);
    const balance = balances.get(order.user_id);
    if (balance !== undefined && balance >= order.total_cents) {
      const after = balance - order.total_cents;
      balances.set(order.user_id, after);
      touched.add(order.user_id);
      debits.push({ userId: order.user_id, orderId, kind: "debit", amountCents: order.total_cents, balanceAfterCents: after });
      await enqueue(tx, withCause(cause, createMessage("StepSucceeded", { order_id: orderId, service: "wallet" })));
      continue;
    }
    const rejection: OrderRejected =
      balance !== undefined
        ? { order_id: orderId, service: "wallet", reason: "insufficient_funds", message: `balance below ${order.total_cents} cents` }
        : { order_id: orderId, service: "wallet", reason: "unknown_wallet", message: `no wallet for user ${order.user_id}` };
    rejections.push({ orderId, service: rejection.service, reason: rejection.reason });
    await enqueue(tx, withCause(cause, createMessage("OrderRejected", rejection)));
  }
  if (debits.length === 0 && rejections.length === 0) return [];
  return [
    updateMany(
      wallets,
      ["userId", "balanceCents"],
      [...touched].map((u) => ({ userId: u, balanceCents: balances.get(u) as number })),
      sql`updated_at = now()`,
    ),
    insertMany(ledger, ["userId", "orderId", "kind", "amountCents", "balanceAfterCents"], debits),
    insertMany(rejectedOrders, ["orderId", "service", "reason"], rejections, sql`on conflict do nothing`),
  ];
}

/**
 * OrderRejected by registry: remember it, refund the debit once if there was one, and say
 * what was undone (registry closes the order on it). Heard again: nothing, it was said already.
 */
export async function refundOrder(tx: Executor, enqueue: Enqueue, rejection: OrderRejected): Promise<void> {
  const orderId = rejection.order_id;
  if (!(await rememberRejection(tx, rejectedOrders, rejection))) {
    // Rejected here first (or heard already): nothing of ours to undo, nothing to say.
    compensationDone("none_rejected_here");
    return;
  }
  const [debit] = await tx
    .select()
    .from(ledger)
    .where(and(eq(ledger.orderId, orderId), eq(ledger.kind, "debit")));
  if (!debit) {
    compensationDone("nothing_to_undo");
    await enqueue(tx, createMessage("OrderCompensated", { order_id: orderId, service: "wallet", action: "nothing_to_undo", amount: 0 }));
    return;
  }
  const [wallet] = await tx
    .update(wallets)
    .set({ balanceCents: sql`${wallets.balanceCents} + ${debit.amountCents}`, updatedAt: new Date() })
    .where(eq(wallets.userId, debit.userId))
    .returning();
  if (!wallet) throw new InvariantError(`wallet ${debit.userId} vanished`);
  await tx.insert(ledger).values({
    userId: debit.userId,
    orderId,
    kind: "refund",
    amountCents: debit.amountCents,
    balanceAfterCents: wallet.balanceCents,
  });
  compensationDone("refunded", debit.amountCents);
  await enqueue(
    tx,
    createMessage("OrderCompensated", { order_id: orderId, service: "wallet", action: "refunded", amount: debit.amountCents }),
  );
}
