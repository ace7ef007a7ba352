/**
 * Wallet's audit report: its own books (each balance is its deposits - debits + refunds, the
 * ledger's running balance agrees, nothing negative, every outbox row published) and, per order,
 * its debit and refund rows for the cross-module check. Set-based: a handful of queries however
 * many orders there are, all in one snapshot.
 */
import { sql } from "drizzle-orm";
import type { WalletAuditReport } from "../../src/contracts/audit";
import type { Database, Executor } from "../../src/db/database";
import { rowsOf } from "../../src/db/rows";
import { checkOutbox, LISTED, localViolations, readSnapshot } from "../../src/saga/audit/module-checks";
import * as tables from "./schema";

/** Builds wallet's report from one snapshot of its tables. */
export async function walletAuditReport(db: Database): Promise<WalletAuditReport> {
  const checkedAt = new Date().toISOString();
  return readSnapshot(db, async (tx) => {
    const out = localViolations();
    const wallets = await checkBalances(tx, out);
    const ledgerRows = await checkRunningBalances(tx, out);
    await checkRows(tx, out);
    const orders = await orderFacts(tx, out);
    const messaging = await checkOutbox(tx, tables, out);
    return {
      module: "wallet" as const,
      checked_at: checkedAt,
      violations: out.list(),
      counts: { wallets, ledger_rows: ledgerRows, orders: orders.length, ...messaging },
      facts: { orders },
    };
  });
}

type Out = ReturnType<typeof localViolations>;

/** balance = deposits - debits + refunds = the last row's balance_after, and never negative; returns the number of wallets. */
async function checkBalances(tx: Executor, out: Out): Promise<number> {
  const rows = rowsOf(
    await tx.execute(sql`
      with l as (
        select user_id,
               coalesce(sum(amount_cents) filter (where kind = 'deposit'), 0) as deposits,
               coalesce(sum(amount_cents) filter (where kind = 'debit'), 0) as debits,
               coalesce(sum(amount_cents) filter (where kind = 'refund'), 0) as refunds,
               (array_agg(balance_after_cents order by id desc))[1] as last_after
        from wallet.ledger group by user_id
      )
      select coalesce(w.user_id, l.user_id) as user_id, w.balance_cents, l.deposits, l.debits, l.refunds, l.last_after,
             count(*) over () as total
      from wallet.wallets w full join l on l.user_id = w.user_id
      where w.user_id is null or w.balance_cents < 0
         or w.balance_cents <> coalesce(l.deposits, 0) - coalesce(l.debits, 0) + coalesce(l.refunds, 0)
         or l.last_after is distinct from w.balance_cents
      order by 1 limit ${LISTED}`),
  );
  out.addCounted(
    "balances",
    Number(rows[0]?.total ?? 0),
    rows.map((r) => {
      const user = `user ${r.user_id}`;
      if (r.balance_cents === null) return `${user}: ledger rows but no wallet`;
      const [balance, deposits, debits, refunds] = [r.balance_cents, r.deposits ?? 0, r.debits ?? 0, r.refunds ?? 0].map(Number) as [
        number,
        number,
        number,
        number,
      ];
      const expected = deposits - debits + refunds;
      const parts = [];
      if (balance < 0) parts.push(`negative balance ${balance}`);
      if (balance !== expected) {
        parts.push(
          `balance ${balance} != deposits ${deposits} - debits ${debits} + refunds ${refunds} = ${expected} (off by ${balance - expected})`,
        );
      }
      if (r.last_after === null) parts.push("no ledger row");
      else if (Number(r.last_after) !== balance) parts.push(`last ledger row says balance ${r.last_after}, wallet says ${balance}`);
      return `${user}: ${parts.join("; ")}`;
    }),
  );
  const [count] = rowsOf(await tx.execute(sql`select count(*) as n from wallet.wallets`));
  return Number(count?.n ?? 0);
}

/** Each row's balance_after = the previous row's (same user, by id) +/- its amount; returns the number of ledger rows. */
async function checkRunningBalances(tx: Executor, out: Out): Promise<number> {
  const rows = rowsOf(
    await tx.execute(sql`
      select id, user_id, kind, amount_cents, balance_after_cents, previous, count(*) over () as total
      from (
        select id, user_id, kind, amount_cents, balance_after_cents,
               lag(balance_after_cents, 1, 0::bigint) over (partition by user_id order by id) as previous
        from wallet.ledger
      ) t
      where balance_after_cents <> previous + case when kind = 'debit' then -amount_cents else amount_cents end
      order by id limit ${LISTED}`),
  );
  out.addCounted(
    "running balance",
    Number(rows[0]?.total ?? 0),
    rows.map(
      (r) =>
        `ledger row ${r.id} (user ${r.user_id}, ${r.kind} ${r.amount_cents}): balance after ${r.balance_after_cents}, ` +
        `but the row before left ${r.previous}`,
    ),
  );
  const [count] = rowsOf(await tx.execute(sql`select count(*) as n from wallet.ledger`));
  return Number(count?.n ?? 0);
}

/** Known kinds, no negative amounts, deposits without an order and debits and refunds with one. */
async function checkRows(tx: Executor, out: Out): Promise<void> {
  const rows = rowsOf(
    await tx.execute(sql`
      select id, user_id, kind, amount_cents, order_id, count(*) over () as total
      from wallet.ledger
      where kind not in ('deposit', 'debit', 'refund') or amount_cents < 0 or (kind = 'deposit') <> (order_id is null)
      order by id limit ${LISTED}`),
  );
  out.addCounted(
    "ledger rows",
    Number(rows[0]?.total ?? 0),
    rows.map((r) => `ledger row ${r.id} (user ${r.user_id}): ${r.kind} of ${r.amount_cents} cents for order ${r.order_id ?? "(none)"}`),
  );
}

/** Per order: its debit and refund rows, counted and summed; rows of one order on several wallets are a violation. */
async function orderFacts(tx: Executor, out: Out): Promise<WalletAuditReport["facts"]["orders"]> {
  const rows = rowsOf(
    await tx.execute(sql`
      select order_id, min(user_id) as user_id, max(user_id) as other_user_id,
             count(*) filter (where kind = 'debit') as debits,
             coalesce(sum(amount_cents) filter (where kind = 'debit'), 0) as debit_cents,
             count(*) filter (where kind = 'refund') as refunds,
             coalesce(sum(amount_cents) filter (where kind = 'refund'), 0) as refund_cents,
             extract(epoch from now() - min(created_at)) as age_seconds
      from wallet.ledger where order_id is not null and kind in ('debit', 'refund')
      group by order_id`),
  );
  for (const r of rows) {
    if (Number(r.user_id) !== Number(r.other_user_id))
      out.add("one wallet per order", `order ${r.order_id}: ledger rows on users ${r.user_id} and ${r.other_user_id}`);
  }
  return rows.map((r) => ({
    order_id: String(r.order_id),
    user_id: Number(r.user_id),
    debits: Number(r.debits),
    debit_cents: Number(r.debit_cents),
    refunds: Number(r.refunds),
    refund_cents: Number(r.refund_cents),
    age_seconds: Math.max(0, Number(r.age_seconds)),
  }));
}
