/** The audit's HTTP contract: every module's report, and the shop's audit that registry answers. */
import { createRoute } from "@hono/zod-openapi";
import { AUDIT_REPORT_SCHEMAS, ShopAuditSchema } from "../contracts/audit";
import { json, withErrors } from "../http/schemas";

/** `GET /admin/audit/report`: `module`'s own violations and the facts the cross-module check needs. */
export const auditReportRoute = <M extends keyof typeof AUDIT_REPORT_SCHEMAS>(module: M) =>
  createRoute(withErrors({
    method: "get",
    path: "/admin/audit/report",
    tags: ["admin"],
    summary: `The ${module}'s audit report: its own invariants and the facts the shop's audit cross-checks`,
    description: "Read by registry's GET /admin/audit; each violation is one readable line.",
    responses: { 200: json(AUDIT_REPORT_SCHEMAS[module], `The ${module}'s report`) },
  }));

/** `GET /admin/audit` (registry): the whole shop's audit. */
export const shopAuditRoute = createRoute(withErrors({
  method: "get",
  path: "/admin/audit",
  tags: ["admin"],
  summary: "Audits the whole shop: each module's books and the rules across them; always 200, `ok` false on any violation",
  description:
    "Fetches registry's report, then wallet's and storage's (registry config `wallet_url`, `storage_url`, or the modules " +
    "this process serves) with the caller's admin token, and checks the invariants across them. A module that cannot " +
    "be reached is a violation (`<module>: no report: ...`) and is shown `reachable: false`.",
  responses: { 200: json(ShopAuditSchema, "The audit; every violation is one readable line") },
}));
