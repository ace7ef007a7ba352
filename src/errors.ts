/**
 * Errors as types. A business-rule failure is a DomainError whose code its module declared once
 * (declareErrors): the compiler refuses any other code, and the routes document the same
 * declarations (src/http/schemas.ts, declaredErrors). A broken invariant is an InvariantError.
 */
export type ErrorKind = "invalid" | "not_found" | "conflict" | "unavailable";

/** One declared error code: its kind (the HTTP status follows from it), when it is given, and an answer as the API writes it. */
export interface ErrorDeclaration {
  kind: ErrorKind;
  /** When the code is given, in words for the OpenAPI document. */
  when: string;
  /** A message as the API really writes it (the documented example). */
  message: string;
  /** The field the example names, if the code names one. */
  field?: string;
}

/** The error codes one module (or one piece of plumbing) may throw, each declared once. */
export class ErrorCodes<C extends string> {
  constructor(
    /** Who declares them, for messages: "wallet". */
    readonly owner: string,
    readonly declared: Readonly<Record<C, ErrorDeclaration>>,
  ) {}

  /** Every declared code. */
  get codes(): C[] {
    return Object.keys(this.declared) as C[];
  }

  /** The DomainError of declared `code`; its kind is the declared one. */
  error(code: NoInfer<C>, message: string, field?: string): DomainError<C> {
    return new DomainError(this, code, message, field);
  }
}

/** Declares `owner`'s error codes: `declareErrors("wallet", { unknown_wallet: { kind: "not_found", ... } })`. */
export const declareErrors = <const T extends Record<string, ErrorDeclaration>>(owner: string, declared: T) =>
  new ErrorCodes<keyof T & string>(owner, declared);

/** A business-rule failure with a stable code such as `unknown_product`, declared by its thrower's ErrorCodes. */
export class DomainError<C extends string = string> extends Error {
  override readonly name = "DomainError";
  readonly kind: ErrorKind;
  constructor(
    codes: ErrorCodes<C>,
    readonly code: NoInfer<C>,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    const declared = (codes.declared as Partial<Record<string, ErrorDeclaration>>)[code];
    if (!declared) throw new InvariantError(`${codes.owner} throws error code ${code}, which it does not declare`);
    this.kind = declared.kind;
  }
}

/**
 * A broken invariant: a state the code promises cannot happen (a row that vanished inside its own
 * transaction, a helper called out of order). A bug, never the caller's doing: answered 500.
 */
export class InvariantError extends Error {
  override readonly name = "InvariantError";
}

/** An error and the causes it wraps (drizzle wraps the driver's, kafkajs its protocol errors), outermost first. */
export function causeChain(err: unknown, depth = 4): unknown[] {
  const chain: unknown[] = [];
  for (let e: unknown = err; e !== null && e !== undefined && chain.length <= depth; e = (e as { cause?: unknown }).cause) chain.push(e);
  return chain;
}
