/** Wallet's rules: deposit, debit an order, refund a rejected one. No HTTP, no bus details. */
import { and, asc, desc, eq, gte, notExists, sql } from "drizzle-orm";
import { createMessage, type OrderCreated, type OrderRejected } from "../../src/contracts";
import type { Database, Db } from "../../src/db/database";
import { DomainError, notFound } from "../../src/errors";
import type { Enqueue } from "../../src/outbox/outbox";
import { isRejected, rememberRejection } from "../../src/outbox/rejections";
import { ledger, rejectedOrders, wallets } from "./schema";

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
    if (!wallet) throw notFound("unknown_wallet", `no wallet for user ${userId}`, "user_id");
    const rows = await q
      .select()
      .from(ledger)
      .where(eq(ledger.userId, userId))
      .orderBy(desc(ledger.id))
      .limit(LEDGER_PAGE);
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

/** Adds money to a user's wallet, opening the wallet on the first deposit. */
export async function deposit(db: Database, userId: number, amountCents: number): Promise<WalletView> {
  return db.transaction(async (tx) => {
    const [current] = await tx.select({ balance: wallets.balanceCents }).from(wallets).where(eq(wallets.userId, userId)).for("update");
    if ((current?.balance ?? 0) + amountCents > MAX_BALANCE_CENTS) {
      throw new DomainError("conflict", "balance_limit", "the balance would exceed its limit", "amount_cents");
    }
    const [wallet] = await tx
      .insert(wallets)
      .values({ userId, balanceCents: amountCents })
      .onConflictDoUpdate({
        target: wallets.userId,
        set: { balanceCents: sql`${wallets.balanceCents} + ${amountCents}`, updatedAt: new Date() },
      })
      .returning();
    if (!wallet) throw new Error("deposit returned no row");
    await tx.insert(ledger).values({
      userId,
      kind: "deposit",
      amountCents,
      balanceAfterCents: wallet.balanceCents,
    });
    return view(wallet);
  });
}

/** OrderCreated: debit the total once, or reject the order. */
export async function debitOrder(tx: Db, enqueue: Enqueue, order: OrderCreated): Promise<void> {
  const orderId = order.order_id;
  // The common case in one statement: not rejected, not debited yet, enough money.
  const [debited] = await tx
    .update(wallets)
    .set({ balanceCents: sql`${wallets.balanceCents} - ${order.total_cents}`, updatedAt: new Date() })
    .where(
      and(
        eq(wallets.userId, order.user_id),
        gte(wallets.balanceCents, order.total_cents),
        notExists(tx.select({ one: sql`1` }).from(rejectedOrders).where(eq(rejectedOrders.orderId, orderId))),
        notExists(tx.select({ one: sql`1` }).from(ledger).where(and(eq(ledger.orderId, orderId), eq(ledger.kind, "debit")))),
      ),
    )
    .returning();
  if (debited) {
    await tx.insert(ledger).values({
      userId: order.user_id,
      orderId,
      kind: "debit",
      amountCents: order.total_cents,
      balanceAfterCents: debited.balanceCents,
    });
    await enqueue(tx, createMessage("StepSucceeded", { order_id: orderId, service: "wallet" }));
    return;
  }
  if (await isRejected(tx, rejectedOrders, orderId)) return;
  const [done] = await tx
    .select({ id: ledger.id })
    .from(ledger)
    .where(and(eq(ledger.orderId, orderId), eq(ledger.kind, "debit")));
  if (done) return;
  const [exists] = await tx.select({ id: wallets.userId }).from(wallets).where(eq(wallets.userId, order.user_id));
  const rejection: OrderRejected = exists
    ? { order_id: orderId, service: "wallet", reason: "insufficient_funds", message: `balance below ${order.total_cents} cents` }
    : { order_id: orderId, service: "wallet", reason: "unknown_wallet", message: `no wallet for user ${order.user_id}` };
  await rememberRejection(tx, rejectedOrders, rejection);
  await enqueue(tx, createMessage("OrderRejected", rejection));
}

/**
 * OrderRejected by registry: remember it, refund the debit once if there was one, and say
 * what was undone (registry closes the order on it). Heard again: nothing, it was said already.
 */
export async function refundOrder(tx: Db, enqueue: Enqueue, rejection: OrderRejected): Promise<void> {
  const orderId = rejection.order_id;
  if (!(await rememberRejection(tx, rejectedOrders, rejection))) return;
  const [debit] = await tx
    .select()
    .from(ledger)
    .where(and(eq(ledger.orderId, orderId), eq(ledger.kind, "debit")));
  if (!debit) {
    await enqueue(tx, createMessage("OrderCompensated", { order_id: orderId, service: "wallet", action: "nothing_to_undo", amount: 0 }));
    return;
  }
  const [wallet] = await tx
    .update(wallets)
    .set({ balanceCents: sql`${wallets.balanceCents} + ${debit.amountCents}`, updatedAt: new Date() })
    .where(eq(wallets.userId, debit.userId))
    .returning();
  if (!wallet) throw new Error(`wallet ${debit.userId} vanished`);
  await tx.insert(ledger).values({
    userId: debit.userId,
    orderId,
    kind: "refund",
    amountCents: debit.amountCents,
    balanceAfterCents: wallet.balanceCents,
  });
  await enqueue(tx, createMessage("OrderCompensated", { order_id: orderId, service: "wallet", action: "refunded", amount: debit.amountCents }));
}
