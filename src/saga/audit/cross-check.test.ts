/** The cross-module rules on small hand-made reports: a clean shop, then each rule broken once. */
import { describe, expect, test } from "bun:test";
import type { AuditReports, RegistryAuditFacts, StorageAuditFacts, WalletAuditFacts } from "../../contracts/audit";
import { crossCheck } from "./cross-check";
import { auditShop, summaryLine } from "./shop-audit";
import { SHOWN_PER_RULE, Violations } from "./violations";

const COMPLETED = "00000000-0000-4000-8000-000000000001";
const PAID_BACK = "00000000-0000-4000-8000-000000000002";
const REFUSED = "00000000-0000-4000-8000-000000000003";
const PENDING = "00000000-0000-4000-8000-000000000004";
const UNDOING = "00000000-0000-4000-8000-000000000005";
const STRANGER = "00000000-0000-4000-8000-00000000000f";

type RegistryOrder = RegistryAuditFacts["orders"][number];
type Money = WalletAuditFacts["orders"][number];
type Held = StorageAuditFacts["orders"][number];

const order = (id: string, status: RegistryOrder["status"], compensation: RegistryOrder["compensation"] = null): RegistryOrder => ({
  id,
  user_id: 7,
  status,
  compensation,
  total_cents: 3000,
  items: [
    { product_id: 1, quantity: 2 },
    { product_id: 2, quantity: 1 },
  ],
});
const money = (order_id: string, debits: number, refunds: number, extra: Partial<Money> = {}): Money => ({
  order_id,
  user_id: 7,
  debits,
  debit_cents: debits * 3000,
  refunds,
  refund_cents: refunds * 3000,
  age_seconds: 1,
  ...extra,
});
const LINES = [
  { product_id: 1, quantity: 2 },
  { product_id: 2, quantity: 1 },
];
const held = (order_id: string, state: "live" | "released", extra: Partial<Held> = {}): Held => ({
  order_id,
  live: state === "live" ? LINES : [],
  released: state === "released" ? LINES : [],
  age_seconds: 1,
  ...extra,
});

/** A shop whose books agree: one completed order, one rejected after paying and reserving, one refused by the wallet, one pending, one being undone. */
function cleanReports(): AuditReports {
  const base = { checked_at: "2026-01-01T00:00:00.000Z", violations: [], counts: {} };
  return {
    registry: {
      module: "registry",
      ...base,
      facts: {
        settle_seconds: 60,
        orders: [
          order(COMPLETED, "completed"),
          order(PAID_BACK, "rejected", "done"),
          order(REFUSED, "rejected", "done"),
          order(PENDING, "pending"),
          order(UNDOING, "rejected", "pending"),
        ],
        unknown_orders: [],
      },
    },
    wallet: {
      module: "wallet",
      ...base,
      facts: { orders: [money(COMPLETED, 1, 0), money(PAID_BACK, 1, 1), money(PENDING, 1, 0), money(UNDOING, 1, 0)] },
    },
    storage: {
      module: "storage",
      ...base,
      facts: { orders: [held(COMPLETED, "live"), held(PAID_BACK, "released"), held(UNDOING, "live")] },
    },
  };
}

/** The one violation `break` causes on a clean shop. */
function onlyViolation(breakIt: (r: AuditReports) => void): string {
  const reports = cleanReports();
  breakIt(reports);
  const violations = crossCheck(reports);
  expect(violations).toHaveLength(1);
  return violations[0] as string;
}

const walletRow = (r: AuditReports, id: string) => r.wallet.facts.orders.find((o) => o.order_id === id) as Money;
const storageRow = (r: AuditReports, id: string) => r.storage.facts.orders.find((o) => o.order_id === id) as Held;

describe("crossCheck", () => {
  test("a clean shop has no violation (pending and half-undone orders are still moving)", () => {
    expect(crossCheck(cleanReports())).toEqual([]);
  });

  test("a completed order debited twice", () => {
    const v = onlyViolation((r) => Object.assign(walletRow(r, COMPLETED), { debits: 2, debit_cents: 6000 }));
    expect(v).toContain(`order ${COMPLETED} (completed`);
    expect(v).toContain("2 debit(s)");
  });

  test("a completed order never debited", () => {
    const v = onlyViolation((r) => {
      r.wallet.facts.orders = r.wallet.facts.orders.filter((o) => o.order_id !== COMPLETED);
    });
    expect(v).toContain("0 debit(s)");
  });

  test("a completed order refunded", () => {
    expect(onlyViolation((r) => Object.assign(walletRow(r, COMPLETED), { refunds: 1, refund_cents: 3000 }))).toContain(
      "expected exactly one debit and no refund",
    );
  });

  test("a debit of another amount than the order's total", () => {
    expect(onlyViolation((r) => Object.assign(walletRow(r, COMPLETED), { debit_cents: 2999 }))).toContain(
      "debited 2999 cents in 1 row(s), the order's total is 3000",
    );
  });

  test("an order paid from another user's wallet", () => {
    expect(onlyViolation((r) => Object.assign(walletRow(r, COMPLETED), { user_id: 8 }))).toContain("ledger rows on user 8's wallet");
  });

  test("a completed order missing a reservation line", () => {
    const v = onlyViolation((r) => Object.assign(storageRow(r, COMPLETED), { live: [{ product_id: 1, quantity: 2 }] }));
    expect(v).toContain("no live reservation for [1 x product 2]");
  });

  test("a completed order with a reservation of another quantity", () => {
    const v = onlyViolation((r) =>
      Object.assign(storageRow(r, COMPLETED), {
        live: [
          { product_id: 1, quantity: 3 },
          { product_id: 2, quantity: 1 },
        ],
      }),
    );
    expect(v).toContain("reservations [3 x product 1] differ from its items");
  });

  test("a completed order whose reservation was released", () => {
    expect(onlyViolation((r) => Object.assign(storageRow(r, COMPLETED), { live: [], released: LINES }))).toContain("no live reservation");
  });

  test("a compensated order whose debit was not refunded", () => {
    const v = onlyViolation((r) => Object.assign(walletRow(r, PAID_BACK), { refunds: 0, refund_cents: 0 }));
    expect(v).toContain(`order ${PAID_BACK} (rejected, compensation done`);
    expect(v).toContain("expected none, or one debit and an equal refund");
  });

  test("a compensated order refunded less than it paid", () => {
    expect(onlyViolation((r) => Object.assign(walletRow(r, PAID_BACK), { refund_cents: 1000 }))).toContain("1 refund(s) of 1000 cents");
  });

  test("a compensated order still holding stock", () => {
    expect(onlyViolation((r) => Object.assign(storageRow(r, PAID_BACK), { live: LINES, released: [] }))).toContain(
      "still holds [2 x product 1, 1 x product 2]",
    );
  });

  test("a refused order debited after all", () => {
    expect(onlyViolation((r) => r.wallet.facts.orders.push(money(REFUSED, 1, 0)))).toContain(`order ${REFUSED}`);
  });

  test("an undecided order debited twice", () => {
    expect(onlyViolation((r) => Object.assign(walletRow(r, PENDING), { debits: 2, debit_cents: 6000 }))).toContain("at most one debit");
  });

  test("ledger rows for an order registry never made, not undone once settled", () => {
    const v = onlyViolation((r) => r.wallet.facts.orders.push(money(STRANGER, 1, 0, { age_seconds: 3600 })));
    expect(v).toContain(`ledger rows for order ${STRANGER}, which registry never made (registry never heard of it)`);
  });

  test("ledger rows for an unknown order are fine once refunded, and not judged before they settle", () => {
    const reports = cleanReports();
    reports.wallet.facts.orders.push(money(STRANGER, 1, 1, { age_seconds: 3600 }));
    reports.wallet.facts.orders.push(money("00000000-0000-4000-8000-00000000000e", 1, 0, { age_seconds: 5 }));
    expect(crossCheck(reports)).toEqual([]);
  });

  test("a reservation for an unknown order registry answered, still held", () => {
    const v = onlyViolation((r) => {
      r.registry.facts.unknown_orders.push({ order_id: STRANGER, service: "storage", answered: true });
      r.storage.facts.orders.push(held(STRANGER, "live", { age_seconds: 3600 }));
    });
    expect(v).toContain("registry heard of it from storage and answered unknown_order");
    expect(v).toContain("still holds");
  });
});

describe("Violations", () => {
  test("lists a few per rule and counts the rest", () => {
    const out = new Violations("x: ", 2);
    for (let i = 0; i < 5; i++) out.add("rule", `v${i}`);
    out.addCounted("other", 10, ["w0"]);
    expect(out.total).toBe(15);
    expect(out.list()).toEqual(["x: v0", "x: v1", "x: w0", "x: rule: 3 more not shown", "x: other: 9 more not shown"]);
    expect(SHOWN_PER_RULE).toBeGreaterThan(10);
  });
});

describe("auditShop", () => {
  test("merges local and cross-module violations, and names a module that cannot answer", async () => {
    const reports = cleanReports();
    reports.wallet.violations = ["user 7: negative balance -1"];
    Object.assign(walletRow(reports, COMPLETED), { debits: 0, debit_cents: 0 });
    const audit = await auditShop({
      registry: async () => reports.registry,
      wallet: async () => reports.wallet,
      storage: async () => reports.storage,
    });
    expect(audit.ok).toBe(false);
    expect(audit.violations[0]).toBe("wallet: user 7: negative balance -1");
    expect(audit.violations[1]).toStartWith(`cross-check: order ${COMPLETED}`);
    expect(audit.modules.wallet.violations).toEqual(["wallet: user 7: negative balance -1"]);

    const down = await auditShop({
      registry: async () => reports.registry,
      wallet: async () => {
        throw new Error("cannot reach http://wallet:8001/admin/audit/report: connection refused");
      },
      storage: async () => reports.storage,
    });
    expect(down.ok).toBe(false);
    expect(down.modules.wallet).toMatchObject({ reachable: false, checked_at: null });
    expect(down.violations).toEqual(["wallet: no report: cannot reach http://wallet:8001/admin/audit/report: connection refused"]);
    expect(summaryLine(down)).toContain("wallet: unreachable");
    const refused = await auditShop({
      registry: async () => reports.registry,
      wallet: async () => {
        throw new Error("GET http://wallet:8001/admin/audit/report answered 401: {}");
      },
      storage: async () => reports.storage,
    });
    expect(summaryLine(refused)).toContain("wallet: refused the admin token (401)");
  });

  test("a clean shop audits clean", async () => {
    const reports = cleanReports();
    const audit = await auditShop({
      registry: async () => reports.registry,
      wallet: async () => reports.wallet,
      storage: async () => reports.storage,
    });
    expect(audit).toMatchObject({ ok: true, violations: [] });
    expect(summaryLine(audit)).toStartWith("audit clean");
  });
});
