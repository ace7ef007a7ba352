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
const AuditItemSchema = z.object({ product_id: z.number().int().describe("Product id"), quantity: z.number().int().describe("Units") });
export type AuditItem = z.infer<typeof AuditItemSchema>;

const ReportBase = {
  checked_at: z.string().describe("When the report was made"),
  /** One readable sentence per broken local rule; empty when the module's own books balance. */
  violations: z.array(z.string()).describe("One readable sentence per broken local rule; empty when the module's own books balance"),
  /** Sizes of what was checked (orders, wallets, ...), for the summary line. */
  counts: z.record(z.string(), Count).describe("Sizes of what was checked (orders, wallets, ...)"),
};

/** Registry's facts: every order and every order it heard of but never made. */
const RegistryAuditFactsSchema = z.object({
  /** An effect on an order registry never made is expected to be undone by then (its age, in the participant's clock). */
  settle_seconds: Seconds.describe("An effect on an order registry never made is expected to be undone by this age"),
  orders: z
    .array(
      z.object({
        id: z.string().describe("Order id"),
        user_id: z.number().int().describe("The customer"),
        status: z.enum(["pending", "completed", "rejected"]).describe("The order's status"),
        /** For a rejected order: `done` once both participants confirmed their undoing; else null. */
        compensation: z
          .enum(["pending", "done"])
          .nullable()
          .describe("For a rejected order: `done` once both participants confirmed their undoing; else null"),
        total_cents: Cents.describe("The order's total in cents"),
        items: z.array(AuditItemSchema).describe("Its lines"),
      }),
    )
    .describe("Every order"),
  unknown_orders: z
    .array(
      z.object({
        order_id: z.string().describe("The order id a participant acted on"),
        service: z.string().describe("The participant"),
        answered: z.boolean().describe("Whether registry has answered it with a rejection"),
      }),
    )
    .describe("Orders a participant acted on that registry never made"),
});
export type RegistryAuditFacts = z.infer<typeof RegistryAuditFactsSchema>;

/** Wallet's facts: per order, its debit and refund rows (counts and sums). */
const WalletAuditFactsSchema = z.object({
  orders: z
    .array(
      z.object({
        order_id: z.string().describe("Order id"),
        user_id: z.number().int().describe("The wallet debited"),
        debits: Count.describe("Debit rows for the order"),
        debit_cents: Cents.describe("Their sum in cents"),
        refunds: Count.describe("Refund rows for the order"),
        refund_cents: Cents.describe("Their sum in cents"),
        /** Seconds since the order's first ledger row. */
        age_seconds: Seconds.describe("Seconds since the order's first ledger row"),
      }),
    )
    .describe("Per order, its debits and refunds"),
});
export type WalletAuditFacts = z.infer<typeof WalletAuditFactsSchema>;

/** Storage's facts: per order, what it holds (`live`) and what it gave back (`released`). */
const StorageAuditFactsSchema = z.object({
  orders: z
    .array(
      z.object({
        order_id: z.string().describe("Order id"),
        live: z.array(AuditItemSchema).describe("Units it holds for the order"),
        released: z.array(AuditItemSchema).describe("Units it gave back"),
        /** Seconds since the order's first reservation. */
        age_seconds: Seconds.describe("Seconds since the order's first reservation"),
      }),
    )
    .describe("Per order, what storage holds and gave back"),
});
export type StorageAuditFacts = z.infer<typeof StorageAuditFactsSchema>;

const MODULE = "The module that made the report";
const FACTS = "What the cross-module check needs";
const RegistryAuditReportSchema = z.object({
  module: z.literal("registry").describe(MODULE),
  ...ReportBase,
  facts: RegistryAuditFactsSchema.describe(FACTS),
});
const WalletAuditReportSchema = z.object({
  module: z.literal("wallet").describe(MODULE),
  ...ReportBase,
  facts: WalletAuditFactsSchema.describe(FACTS),
});
const StorageAuditReportSchema = z.object({
  module: z.literal("storage").describe(MODULE),
  ...ReportBase,
  facts: StorageAuditFactsSchema.describe(FACTS),
});
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
const ModuleAuditSummarySchema = z.object({
  reachable: z.boolean().describe("Whether its report could be had"),
  checked_at: z.string().nullable().describe("When it made its report; null if unreachable"),
  /** Why its report could not be had (unreachable, refused, malformed); null when it was. */
  error: z.string().nullable().describe("Why its report could not be had (unreachable, refused, malformed); null when it was"),
  violations: z.array(z.string()).describe("Its own violations"),
  counts: z.record(z.string(), Count).describe("Sizes of what it checked"),
});

/** The whole shop's audit: `ok` when every module answered and no rule is broken. */
export const ShopAuditSchema = z.object({
  ok: z.boolean().describe("True when every module answered and no rule is broken"),
  checked_at: z.string().describe("When the audit ran"),
  /** Every violation: each module's own (prefixed with its name), then the cross-module ones (`cross-check:`). */
  violations: z
    .array(z.string())
    .describe("Every violation: each module's own (prefixed with its name), then the cross-module ones (`cross-check:`)"),
  modules: z
    .object({
      registry: ModuleAuditSummarySchema.describe("Registry's summary"),
      wallet: ModuleAuditSummarySchema.describe("Wallet's summary"),
      storage: ModuleAuditSummarySchema.describe("Storage's summary"),
    })
    .describe("Each module's summary"),
});
export type ShopAudit = z.infer<typeof ShopAuditSchema>;
export type ModuleAuditSummary = z.infer<typeof ModuleAuditSummarySchema>;
