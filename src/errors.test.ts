/** Declared error codes: the compiler refuses an undeclared one (tsc checks the @ts-expect-error lines), and so does the run time. */
import { describe, expect, test } from "bun:test";
import { DomainError, declareErrors, InvariantError } from "./errors";

const SHELF_ERRORS = declareErrors("shelf", {
  unknown_shelf: { kind: "not_found", when: "no shelf has this id", message: "no shelf 7", field: "id" },
  shelf_full: { kind: "conflict", when: "the shelf holds all it can", message: "shelf 7 is full" },
});

describe("declared error codes", () => {
  test("a declared code makes a DomainError of its declared kind", () => {
    const err = SHELF_ERRORS.error("shelf_full", "shelf 3 is full");
    expect(err).toBeInstanceOf(DomainError);
    expect([err.kind, err.code, err.message, err.field]).toEqual(["conflict", "shelf_full", "shelf 3 is full", undefined]);
    const missing = new DomainError(SHELF_ERRORS, "unknown_shelf", "no shelf 3", "id");
    expect([missing.kind, missing.code, missing.field]).toEqual(["not_found", "unknown_shelf", "id"]);
    expect(SHELF_ERRORS.codes).toEqual(["unknown_shelf", "shelf_full"]);
  });

  test("an undeclared code does not compile, and at run time is a broken invariant, not a DomainError", () => {
    // @ts-expect-error: "out_of_stock" is not one of shelf's declared codes, so tsc refuses it.
    expect(() => SHELF_ERRORS.error("out_of_stock", "no more")).toThrow(InvariantError);
    // @ts-expect-error: the constructor takes only the codes of the declaration it is given.
    expect(() => new DomainError(SHELF_ERRORS, "unknown_wallet", "no wallet 1")).toThrow(
      "shelf throws error code unknown_wallet, which it does not declare",
    );
  });
});
