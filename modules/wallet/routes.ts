/** Wallet's HTTP contract: balances, their ledgers and deposits, with examples the API really gives. */
import { createRoute, z } from "@hono/zod-openapi";
import { adminSecurity } from "../../src/http/auth";
import { AmountCents, declaredErrors, IdParam, json, locationHeader, Timestamp, withErrors } from "../../src/http/schemas";
import { idempotencyKeyHeaders, KEY_REUSED, replayedHeader } from "../../src/idempotency";
import { WALLET_ERRORS } from "./errors";

const Wallet = z
  .object({
    user_id: z.int().describe("The wallet's owner"),
    balance_cents: z.int().describe("Balance in cents, never negative"),
    updated_at: Timestamp.describe("When the balance last changed"),
  })
  .describe("A user's wallet")
  .openapi("Wallet");

const LedgerEntry = z
  .object({
    id: z.int().describe("Entry id, increasing"),
    kind: z
      .enum(["deposit", "debit", "refund"])
      .describe("`deposit`: money added; `debit`: an order paid; `refund`: a rejected order's money given back"),
    amount_cents: z.int().describe("Cents moved, always positive"),
    balance_after_cents: z.int().describe("The balance right after this entry"),
    order_id: z.uuid().nullable().describe("The order debited or refunded; null for a deposit"),
    created_at: Timestamp.describe("When it was written"),
  })
  .describe("One movement of money")
  .openapi("LedgerEntry");

const WalletDetail = Wallet.extend({ ledger: z.array(LedgerEntry).describe("The latest entries, newest first") })
  .describe("A wallet with its latest ledger entries")
  .openapi("WalletDetail");

const UserParams = z.object({
  user_id: IdParam.openapi({ param: { name: "user_id", in: "path" }, description: "The wallet's owner (decimal digits)", example: 1 }),
});

/** Real answers for one user: a deposit, then an order of 14 997 cents paid. */
const OPENED = { user_id: 1, balance_cents: 100_000, updated_at: "2026-03-14T09:20:00.412Z" };
const PAID = { user_id: 1, balance_cents: 85_003, updated_at: "2026-03-14T09:26:53.629Z" };

export const listWalletsRoute = createRoute(
  withErrors({
    method: "get",
    path: "/wallets",
    tags: ["wallet"],
    summary: "Every wallet with its balance",
    description: "All wallets by user id. A wallet exists once seeded (config/wallet.yaml) or after its first deposit.",
    responses: {
      200: json(z.object({ wallets: z.array(Wallet).describe("By user id") }), "Every wallet", {
        wallets: [PAID, { user_id: 2, balance_cents: 50_000, updated_at: "2026-03-14T09:20:00.415Z" }],
      }),
    },
  }),
);

export const getWalletRoute = createRoute(
  withErrors(
    {
      method: "get",
      path: "/wallets/{user_id}",
      tags: ["wallet"],
      summary: "One balance and its latest ledger entries",
      description: "The balance and the latest ledger entries (deposits, debits for orders, refunds of rejected orders), newest first.",
      request: { params: UserParams },
      responses: {
        200: json(WalletDetail, "The wallet", {
          ...PAID,
          ledger: [
            {
              id: 2,
              kind: "debit",
              amount_cents: 14_997,
              balance_after_cents: 85_003,
              order_id: "3f6c1a52-8d4e-4b8e-9a57-2c1d0e9b7a41",
              created_at: "2026-03-14T09:26:53.629Z",
            },
            { id: 1, kind: "deposit", amount_cents: 100_000, balance_after_cents: 100_000, order_id: null, created_at: OPENED.updated_at },
          ],
        }),
      },
    },
    [
      {
        400: {
          invalid_request: {
            when: "`user_id` is not a positive integer in decimal digits (`1e2`, `0x10`, `007` are refused)",
            message: "user_id: expected an integer written in decimal digits",
            field: "user_id",
          },
        },
      },
      declaredErrors(WALLET_ERRORS, "unknown_wallet"),
    ],
  ),
);

export const depositRoute = createRoute(
  withErrors(
    {
      method: "post",
      path: "/wallets/{user_id}/deposits",
      tags: ["wallet"],
      summary: "Tops up a wallet (opening it on the first deposit); needs the admin token",
      description:
        "Adds `amount_cents` to the balance and writes a `deposit` ledger entry, in one transaction. " +
        "Send an `Idempotency-Key` to retry safely: a deposit that timed out is either answered again or made once.",
      security: adminSecurity,
      request: {
        params: UserParams,
        headers: idempotencyKeyHeaders({
          does: "makes the deposit",
          repeat: "adds nothing",
          afterRetention: "makes a new deposit",
          setting: "wallet's `idempotency_key_retention_hours`",
        }),
        body: {
          required: true,
          description: "How much to add",
          content: {
            "application/json": {
              schema: z
                .strictObject({ amount_cents: AmountCents.describe("Cents to add, 1 to 100 000 000 000") })
                .describe("A deposit; unknown fields are refused")
                .openapi("Deposit"),
              example: { amount_cents: 100_000 },
            },
          },
        },
      },
      responses: {
        201: {
          ...json(Wallet, "The wallet after the deposit (for a repeated Idempotency-Key, as first answered)", OPENED),
          headers: {
            ...locationHeader("The wallet's own URL (GET /wallets/{user_id})", "/wallets/1"),
            ...replayedHeader("nothing was added"),
          },
        },
      },
    },
    [
      {
        400: {
          invalid_request: {
            when: "`user_id` or `amount_cents` is missing, not an integer or out of range, an unknown field, or a bad Idempotency-Key (`field` names it)",
            message: "amount_cents: Too small: expected number to be >0",
            field: "amount_cents",
          },
        },
      },
      declaredErrors(WALLET_ERRORS, "balance_limit"),
      KEY_REUSED,
    ],
  ),
);
