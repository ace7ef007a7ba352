/** The audit's HTTP contract: every module's report, and the shop's audit that registry answers. */
import { createRoute } from "@hono/zod-openapi";
import { AUDIT_REPORT_SCHEMAS, ShopAuditSchema } from "../../contracts/audit";
import { json, withErrors } from "../../http/schemas";

const ORDER_ID = "3f6c1a52-8d4e-4b8e-9a57-2c1d0e9b7a41";
const COUNTS = {
  registry: { orders: 1, unknown_orders: 0, outbox_rows: 1, dead_letters: 0 },
  wallet: { wallets: 1, ledger_rows: 2, orders: 1, outbox_rows: 1, dead_letters: 0 },
  storage: { products: 7, reservations: 1, orders: 1, outbox_rows: 1, dead_letters: 0 },
};
/** Real reports of a shop with one completed order (user 1: a keyboard and two mice). */
const REPORT_EXAMPLES = {
  registry: {
    module: "registry" as const,
    checked_at: "2026-03-14T09:30:00.112Z",
    violations: [],
    counts: COUNTS.registry,
    facts: {
      settle_seconds: 72,
      orders: [
        {
          id: ORDER_ID,
          user_id: 1,
          status: "completed" as const,
          compensation: null,
          total_cents: 14997,
          items: [
            { product_id: 1, quantity: 1 },
            { product_id: 2, quantity: 2 },
          ],
        },
      ],
      unknown_orders: [],
    },
  },
  wallet: {
    module: "wallet" as const,
    checked_at: "2026-03-14T09:30:00.119Z",
    violations: [],
    counts: COUNTS.wallet,
    facts: {
      orders: [{ order_id: ORDER_ID, user_id: 1, debits: 1, debit_cents: 14997, refunds: 0, refund_cents: 0, age_seconds: 186.49 }],
    },
  },
  storage: {
    module: "storage" as const,
    checked_at: "2026-03-14T09:30:00.126Z",
    violations: [],
    counts: COUNTS.storage,
    facts: {
      orders: [
        {
          order_id: ORDER_ID,
          live: [
            { product_id: 1, quantity: 1 },
            { product_id: 2, quantity: 2 },
          ],
          released: [],
          age_seconds: 186.48,
        },
      ],
    },
  },
};
const summary = (m: keyof typeof COUNTS, checked_at: string) => ({
  reachable: true,
  checked_at,
  error: null,
  violations: [],
  counts: COUNTS[m],
});

/** `GET /admin/audit/report`: `module`'s own violations and the facts the cross-module check needs. */
export const auditReportRoute = <M extends keyof typeof AUDIT_REPORT_SCHEMAS>(module: M) =>
  createRoute(
    withErrors({
      method: "get",
      path: "/admin/audit/report",
      tags: ["admin"],
      summary: `The ${module}'s audit report: its own invariants and the facts the shop's audit cross-checks`,
      description: "Read by registry's GET /admin/audit; each violation is one readable line.",
      responses: { 200: json(AUDIT_REPORT_SCHEMAS[module], `The ${module}'s report`, REPORT_EXAMPLES[module]) },
    }),
  );

/** `GET /admin/audit` (registry): the whole shop's audit. */
export const shopAuditRoute = createRoute(
  withErrors({
    method: "get",
    path: "/admin/audit",
    tags: ["admin"],
    summary: "Audits the whole shop: each module's books and the rules across them; always 200, `ok` false on any violation",
    description:
      "Fetches registry's report, then wallet's and storage's (registry config `wallet_url`, `storage_url`, or the modules " +
      "this process serves) with the caller's admin token, and checks the invariants across them. A module that cannot " +
      "be reached is a violation (`<module>: no report: ...`) and is shown `reachable: false`.",
    responses: {
      200: json(ShopAuditSchema, "The audit; every violation is one readable line", {
        ok: true,
        checked_at: "2026-03-14T09:30:00.105Z",
        violations: [],
        modules: {
          registry: summary("registry", "2026-03-14T09:30:00.112Z"),
          wallet: summary("wallet", "2026-03-14T09:30:00.119Z"),
          storage: summary("storage", "2026-03-14T09:30:00.126Z"),
        },
      }),
    },
  }),
);
