/**
 * The audit's cross-module rules, as a pure function of the three modules' reports.
 *
 * Registry's report must be taken before the participants' (the audit fetches it first): then an
 * order registry calls completed or compensated had its effects committed before the participants
 * were read, and only orders registry has not decided yet are still moving. Those (pending, or
 * rejected with compensation pending) are left to registry's own deadline rules; an effect on an
 * order registry does not list is judged only once it is older than `settle_seconds`, since the
 * order may have been placed after registry's report or be waiting for its `unknown_order` answer.
 */
import type { AuditItem, AuditReports, RegistryAuditFacts, StorageAuditFacts, WalletAuditFacts } from "../../contracts/audit";
import { Violations } from "./violations";

type Order = RegistryAuditFacts["orders"][number];
type Money = WalletAuditFacts["orders"][number];
type Held = StorageAuditFacts["orders"][number];

const NO_MONEY = { debits: 0, debit_cents: 0, refunds: 0, refund_cents: 0 };

/** Violations of the rules that span modules; empty when the three reports agree. */
export function crossCheck(reports: AuditReports): string[] {
  const out = new Violations("cross-check: ");
  const { orders, unknown_orders, settle_seconds } = reports.registry.facts;
  const money = new Map(reports.wallet.facts.orders.map((m) => [m.order_id, m]));
  const held = new Map(reports.storage.facts.orders.map((h) => [h.order_id, h]));
  const known = new Set<string>();
  for (const o of orders) {
    known.add(o.id);
    checkMoney(out, o, money.get(o.id));
    checkStock(out, o, held.get(o.id));
  }
  const heardOf = new Map(unknown_orders.map((u) => [u.order_id, u]));
  const registrySays = (id: string) => {
    const u = heardOf.get(id);
    if (!u) return "registry never heard of it";
    return `registry heard of it from ${u.service}${u.answered ? " and answered unknown_order" : ", not answered yet"}`;
  };
  for (const m of reports.wallet.facts.orders) {
    if (known.has(m.order_id) || m.age_seconds < settle_seconds) continue;
    if (m.debits !== m.refunds || m.debit_cents !== m.refund_cents) {
      out.add(
        "ledger rows for an unknown order",
        `ledger rows for order ${m.order_id}, which registry never made (${registrySays(m.order_id)}), not undone: ` +
          `${shape(m)} (user ${m.user_id}, first row ${Math.round(m.age_seconds)} s ago)`,
      );
    }
  }
  for (const h of reports.storage.facts.orders) {
    if (known.has(h.order_id) || h.age_seconds < settle_seconds || h.live.length === 0) continue;
    out.add(
      "reservations for an unknown order",
      `order ${h.order_id}, which registry never made (${registrySays(h.order_id)}), still holds ${items(h.live)} ` +
        `(reserved ${Math.round(h.age_seconds)} s ago)`,
    );
  }
  return out.list();
}

/** A completed order paid its total once; a compensated one paid nothing net; no order paid from another's wallet. */
function checkMoney(out: Violations, o: Order, m: Money | undefined): void {
  const got = m ?? NO_MONEY;
  const label = describe(o);
  if (m && m.user_id !== o.user_id) out.add("wrong wallet", `${label}: ledger rows on user ${m.user_id}'s wallet`);
  if (got.debits > 0 && got.debit_cents !== got.debits * o.total_cents) {
    out.add("debit amount", `${label}: debited ${got.debit_cents} cents in ${got.debits} row(s), the order's total is ${o.total_cents}`);
  }
  if (o.status === "completed") {
    if (got.debits !== 1 || got.refunds !== 0)
      out.add("completed order's money", `${label}: ${shape(got)}; expected exactly one debit and no refund`);
  } else if (settled(o)) {
    const none = got.debits === 0 && got.refunds === 0;
    const undone = got.debits === 1 && got.refunds === 1 && got.debit_cents === got.refund_cents;
    if (!none && !undone) out.add("compensated order's money", `${label}: ${shape(got)}; expected none, or one debit and an equal refund`);
  } else if (got.debits > 1 || got.refunds > 1 || got.refunds > got.debits) {
    out.add("undecided order's money", `${label}: ${shape(got)}; at most one debit, and a refund only after it`);
  }
}

/** A completed order holds exactly its items; a compensated one holds nothing; nothing is held that the order did not ask for. */
function checkStock(out: Violations, o: Order, h: Held | undefined): void {
  const live = h?.live ?? [];
  const released = h?.released ?? [];
  const label = describe(o);
  const wanted = new Map(o.items.map((i) => [i.product_id, i.quantity]));
  const strays = [...live, ...released].filter((r) => wanted.get(r.product_id) !== r.quantity);
  if (strays.length > 0) out.add("reservation lines", `${label}: reservations ${items(strays)} differ from its items ${items(o.items)}`);
  if (o.status === "completed") {
    const missing = o.items.filter((i) => !live.some((r) => r.product_id === i.product_id));
    const problems = [];
    if (missing.length > 0) problems.push(`no live reservation for ${items(missing)}`);
    if (released.length > 0) problems.push(`reservations released: ${items(released)}`);
    if (problems.length > 0) out.add("completed order's stock", `${label}: ${problems.join("; ")}`);
  } else if (settled(o) && live.length > 0) {
    out.add("compensated order's stock", `${label}: still holds ${items(live)}`);
  }
}

/** Rejected and both participants confirmed their undoing: its effects must be gone. */
const settled = (o: Order): boolean => o.status === "rejected" && o.compensation === "done";

const describe = (o: Order): string =>
  `order ${o.id} (${o.status}${o.status === "rejected" ? `, compensation ${o.compensation ?? "unknown"}` : ""}, user ${o.user_id})`;

const shape = (m: typeof NO_MONEY): string =>
  `${m.debits} debit(s) of ${m.debit_cents} cents, ${m.refunds} refund(s) of ${m.refund_cents} cents`;

const items = (list: AuditItem[]): string => `[${list.map((i) => `${i.quantity} x product ${i.product_id}`).join(", ")}]`;
