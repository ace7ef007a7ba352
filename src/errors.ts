/** Domain errors: stable codes that services raise and the HTTP layer maps to a status. */
export type ErrorKind = "invalid" | "not_found" | "conflict" | "unavailable";

/** A business-rule failure with a stable code such as `unknown_product`. */
export class DomainError extends Error {
  override readonly name = "DomainError";
  constructor(
    readonly kind: ErrorKind,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** Shorthand for a 404-style domain error. */
export const notFound = (code: string, message: string, field?: string) =>
  new DomainError("not_found", code, message, field);

/** Shorthand for a 422-style domain error. */
export const invalid = (code: string, message: string, field?: string) =>
  new DomainError("invalid", code, message, field);

/** An error and the causes it wraps (drizzle wraps the driver's, kafkajs its protocol errors), outermost first. */
export function causeChain(err: unknown, depth = 4): unknown[] {
  const chain: unknown[] = [];
  for (let e: unknown = err; e !== null && e !== undefined && chain.length <= depth; e = (e as { cause?: unknown }).cause) chain.push(e);
  return chain;
}
