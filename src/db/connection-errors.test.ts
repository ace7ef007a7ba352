import { describe, expect, test } from "bun:test";
import { isConnectionError } from "./database";

const err = (props: { code?: string; message?: string; name?: string }, cause?: unknown) =>
  Object.assign(new Error(props.message ?? "failed", cause === undefined ? undefined : { cause }), props);

describe("isConnectionError: the database could not be reached (a 503, never a 500)", () => {
  test("postgres.js's connection errors, the socket's, and SQLSTATE classes 08 and 57P, also as the cause of drizzle's error", () => {
    for (const code of [
      "CONNECTION_CLOSED",
      "CONNECTION_ENDED",
      "CONNECTION_DESTROYED",
      "CONNECT_TIMEOUT",
      "ECONNREFUSED",
      "ECONNRESET",
      "EPIPE",
      "ETIMEDOUT",
      "ERR_SOCKET_CLOSED_BEFORE_CONNECTION",
      "ENOTCONN",
      "57P01",
      "57P03",
      "08006",
      "08001",
      "08P01",
    ]) {
      expect({
        code,
        alone: isConnectionError(err({ code })),
        wrapped: isConnectionError(err({ message: "Failed query: select 1" }, err({ code }))),
      }).toEqual({
        code,
        alone: true,
        wrapped: true,
      });
    }
  });

  test("a query's own failure, a conflict, or an HTTP client that left are not", () => {
    for (const e of [
      err({ code: "23505" }),
      err({ code: "40001" }),
      err({ code: "42P01" }),
      err({ name: "AbortError", message: "The connection was closed." }),
      new Error("boom"),
    ]) {
      expect(isConnectionError(e)).toBe(false);
    }
  });
});
