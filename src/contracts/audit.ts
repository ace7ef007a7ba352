/**
 * The audit's reports: what each module says about its own books (`GET /admin/audit/report`),
 * and the whole shop's audit that registry answers (`GET /admin/audit`). A module's report holds
 * the violations of its local invariants and the facts the cross-module check needs.
 */
import { z } from "zod";

const Count = z.number().int().min(0);
const Cents = z.number().int();
const Seconds = z.number().min(0);

/** A product and a number of units (an order line, a reservation). */
export const AuditItemSchema = z.object({ product_id: z.number().int(), quantity: z.number().int() });
export type AuditItem = z.infer<typeof AuditItemSchema>;

const ReportBase = {
  checked_at: z.string(),
  /** One readable sentence per broken local rule; empty when the module's own books balance. */
  violations: z.array(z.string()),
  /** Sizes of what was checked (orders, wallets, ...), for the summary line. */
  counts: z.record(z.string(), Count),
};

/** Registry's facts: every order and every order it heard of but never made. */
export const RegistryAuditFactsSchema = z.object({
  /** An effect on an order registry never made is expected to be undone by then (its age, in the participant's clock). */
  settle_seconds: Seconds,
  orders: z.array(
    z.object({
      id: z.string(),
      user_id: z.number().int(),
      status: z.enum(["pending", "completed", "rejected"]),
      /** For a rejected order: `done` once both participants confirmed their undoing; else null. */
      compensation: z.enum(["pending", "done"]).nullable(),
      total_cents: Cents,
      items: z.array(AuditItemSchema),
    }),
  ),
  unknown_orders: z.array(z.object({ order_id: z.string(), service: z.string(), answered: z.boolean() })),
});
export type RegistryAuditFacts = z.infer<typeof RegistryAuditFactsSchema>;

/** Wallet's facts: per order, its debit and refund rows (counts and sums). */
export const WalletAuditFactsSchema = z.object({
  orders: z.array(
    z.object({
      order_id: z.string(),
      user_id: z.number().int(),
      debits: Count,
      debit_cents: Cents,
      refunds: Count,
      refund_cents: Cents,
      /** Seconds since the order's first ledger row. */
      age_seconds: Seconds,
    }),
  ),
});
export type WalletAuditFacts = z.infer<typeof WalletAuditFactsSchema>;

/** Storage's facts: per order, what it holds (`live`) and what it gave back (`released`). */
export const StorageAuditFactsSchema = z.object({
  orders: z.array(
    z.object({
      order_id: z.string(),
      live: z.array(AuditItemSchema),
      released: z.array(AuditItemSchema),
      /** Seconds since the order's first reservation. */
      age_seconds: Seconds,
    }),
  ),
});
export type StorageAuditFacts = z.infer<typeof StorageAuditFactsSchema>;

export const RegistryAuditReportSchema = z.object({ module: z.literal("registry"), ...ReportBase, facts: RegistryAuditFactsSchema });
export const WalletAuditReportSchema = z.object({ module: z.literal("wallet"), ...ReportBase, facts: WalletAuditFactsSchema });
export const StorageAuditReportSchema = z.object({ module: z.literal("storage"), ...ReportBase, facts: StorageAuditFactsSchema });
export type RegistryAuditReport = z.infer<typeof RegistryAuditReportSchema>;
export type WalletAuditReport = z.infer<typeof WalletAuditReportSchema>;
export type StorageAuditReport = z.infer<typeof StorageAuditReportSchema>;

/** Each module's report schema, by module name. */
export const AUDIT_REPORT_SCHEMAS = {
  registry: RegistryAuditReportSchema,
  wallet: WalletAuditReportSchema,
  storage: StorageAuditReportSchema,
} as const;

/** The three modules' reports, as the cross-check takes them. */
export interface AuditReports {
  registry: RegistryAuditReport;
  wallet: WalletAuditReport;
  storage: StorageAuditReport;
}

/** One module in the shop's audit: reached or not, its local violations and counts (no facts). */
export const ModuleAuditSummarySchema = z.object({
  reachable: z.boolean(),
  checked_at: z.string().nullable(),
  /** Why its report could not be had (unreachable, refused, malformed); null when it was. */
  error: z.string().nullable(),
  violations: z.array(z.string()),
  counts: z.record(z.string(), Count),
});

/** The whole shop's audit: `ok` when every module answered and no rule is broken. */
export const ShopAuditSchema = z.object({
  ok: z.boolean(),
  checked_at: z.string(),
  /** Every violation: each module's own (prefixed with its name), then the cross-module ones (`cross-check:`). */
  violations: z.array(z.string()),
  modules: z.object({ registry: ModuleAuditSummarySchema, wallet: ModuleAuditSummarySchema, storage: ModuleAuditSummarySchema }),
});
export type ShopAudit = z.infer<typeof ShopAuditSchema>;
export type ModuleAuditSummary = z.infer<typeof ModuleAuditSummarySchema>;
