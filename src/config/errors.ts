/** How a bad setting is reported: one ConfigError that names the setting as the user wrote it and shows its value. */
import type { z } from "zod";

/**
 * A setting that failed validation; `setting` names it as the user wrote it (a variable, a flag,
 * or `<file>: <key>`), `value` is the bad value as shown (quoted, secrets hidden), if there is one.
 */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    readonly setting: string,
    message: string,
    readonly value?: string,
  ) {
    super(`${setting}${value === undefined ? "" : `=${value}`}: ${message}`);
  }
}

/** Settings whose values are never printed. */
const SECRETS = new Set(["ADMIN_TOKEN", "BUS_SIGNING_KEY", "BUS_SIGNING_KEY_PREVIOUS"]);

/** How a bad value is shown: JSON-quoted, shortened; secrets hidden, a URL's password masked. */
export function showValue(name: string, value: unknown): string {
  if (SECRETS.has(name)) return typeof value === "string" ? `(hidden, ${value.length} characters)` : "(hidden)";
  let text = value === undefined ? "(missing)" : (JSON.stringify(value) ?? String(value));
  if (name === "DATABASE_URL") text = text.replace(/(\/\/[^/@:]*:)[^@/]*@/, "$1***@");
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** A zod issue's message, plainer where zod's is obscure. */
export function readable(issue: z.core.$ZodIssue | undefined): string {
  if (!issue) return "invalid";
  if (issue.code === "invalid_type" && issue.expected === "number") return "expected a number";
  return issue.message;
}
