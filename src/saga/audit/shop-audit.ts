/**
 * The whole shop's audit: the three modules' reports (registry's first, see cross-check.ts),
 * each module's own violations, and the cross-module rules. Shared by registry's
 * `GET /admin/audit`, `bun run audit` and the tests.
 */
import type { z } from "zod";
import { AUDIT_REPORT_SCHEMAS, type AuditReports, type ModuleAuditSummary, type ShopAudit } from "../../contracts/audit";
import { crossCheck } from "./cross-check";

type AuditedModule = keyof AuditReports;
const AUDITED: AuditedModule[] = ["registry", "wallet", "storage"];

/** Where each module's report comes from: a call in this process or a fetch over HTTP. */
export type ReportSources = { [M in AuditedModule]: () => Promise<AuditReports[M]> };

/** How long one module may take to answer its report. */
const REPORT_TIMEOUT_MS = 60_000;

/** Thrown when a module's report cannot be had; the audit names the module and the reason. */
class ReportUnavailable extends Error {
  override readonly name = "ReportUnavailable";
}

/** Fetches `GET {base}/admin/audit/report` with the admin token and checks it is `module`'s report. */
export async function fetchReport<M extends AuditedModule>(
  module: M,
  base: string,
  token: string | undefined,
  timeoutMs = REPORT_TIMEOUT_MS,
): Promise<AuditReports[M]> {
  const url = `${base.replace(/\/+$/, "")}/admin/audit/report`;
  let res: Response;
  try {
    res = await fetch(url, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    throw new ReportUnavailable(`cannot reach ${url}: ${(err as Error).message}`);
  }
  const text = await res.text();
  if (res.status !== 200) throw new ReportUnavailable(`GET ${url} answered ${res.status}: ${text.slice(0, 200)}`);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ReportUnavailable(`GET ${url} answered something that is not JSON`);
  }
  const schema = AUDIT_REPORT_SCHEMAS[module] as unknown as z.ZodType<AuditReports[M]>;
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ReportUnavailable(`GET ${url} is not ${module}'s report (${issue?.path.join(".") ?? ""}: ${issue?.message ?? "invalid"})`);
  }
  return parsed.data;
}

/** Report sources that fetch all three over HTTP. */
export function httpSources(urls: Record<AuditedModule, string>, token: string | undefined, timeoutMs = REPORT_TIMEOUT_MS): ReportSources {
  return {
    registry: () => fetchReport("registry", urls.registry, token, timeoutMs),
    wallet: () => fetchReport("wallet", urls.wallet, token, timeoutMs),
    storage: () => fetchReport("storage", urls.storage, token, timeoutMs),
  };
}

type Outcome<M extends AuditedModule> = { ok: true; report: AuditReports[M] } | { ok: false; error: string };

async function settle<M extends AuditedModule>(source: () => Promise<AuditReports[M]>): Promise<Outcome<M>> {
  try {
    return { ok: true, report: await source() };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}

/** Runs the audit: registry's report, then the participants' together; a module that cannot answer is a violation. */
export async function auditShop(sources: ReportSources): Promise<ShopAudit> {
  const checkedAt = new Date().toISOString();
  const registry: Outcome<"registry"> = await settle<"registry">(sources.registry);
  const [wallet, storage]: [Outcome<"wallet">, Outcome<"storage">] = await Promise.all([
    settle<"wallet">(sources.wallet),
    settle<"storage">(sources.storage),
  ]);
  const outcomes: { [M in AuditedModule]: Outcome<M> } = { registry, wallet, storage };
  const violations: string[] = [];
  const modules = {} as Record<AuditedModule, ModuleAuditSummary>;
  for (const name of AUDITED) {
    const o: Outcome<AuditedModule> = outcomes[name];
    if (!o.ok) {
      violations.push(`${name}: no report: ${o.error}`);
      modules[name] = { reachable: false, checked_at: null, error: o.error, violations: [], counts: {} };
      continue;
    }
    const prefixed = o.report.violations.map((v) => `${name}: ${v}`);
    violations.push(...prefixed);
    modules[name] = { reachable: true, checked_at: o.report.checked_at, error: null, violations: prefixed, counts: o.report.counts };
  }
  if (registry.ok && wallet.ok && storage.ok) {
    violations.push(...crossCheck({ registry: registry.report, wallet: wallet.report, storage: storage.report }));
  }
  return { ok: violations.length === 0, checked_at: checkedAt, violations, modules };
}

/** A module's missing report in a few words: its token refused, another status, or not reached at all. */
function whyNoReport(error: string | null): string {
  const status = /answered (\d{3})/.exec(error ?? "")?.[1];
  if (status === "401") return "refused the admin token (401)";
  return status ? `no report (HTTP ${status})` : "unreachable";
}

/** One line: what was audited and how many violations. */
export function summaryLine(audit: ShopAudit): string {
  const counts = AUDITED.map((m) => {
    const s = audit.modules[m];
    if (!s.reachable) return `${m}: ${whyNoReport(s.error)}`;
    const parts = Object.entries(s.counts).map(([k, v]) => `${v} ${k}`);
    return `${m}: ${parts.join(", ") || "checked"}`;
  });
  const verdict = audit.ok ? "clean" : `${audit.violations.length} violation(s)`;
  return `audit ${verdict} (${counts.join("; ")})`;
}
