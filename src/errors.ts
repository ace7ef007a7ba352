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
