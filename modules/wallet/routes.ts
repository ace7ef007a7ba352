/** Wallet's HTTP contract. */
import { createRoute, z } from "@hono/zod-openapi";
import { adminSecurity } from "../../src/http/auth";
import { AmountCents, errors, IdParam, json } from "../../src/http/schemas";

const Wallet = z
  .object({ user_id: z.number().int(), balance_cents: z.number().int(), updated_at: z.string() })
  .openapi("Wallet", { example: { user_id: 1, balance_cents: 50_000, updated_at: "2026-01-01T00:00:00.000Z" } });

const LedgerEntry = z
  .object({
    id: z.number().int(),
    kind: z.enum(["deposit", "debit", "refund"]),
    amount_cents: z.number().int(),
    balance_after_cents: z.number().int(),
    order_id: z.string().nullable(),
    created_at: z.string(),
  })
  .openapi("LedgerEntry");

const WalletDetail = Wallet.extend({ ledger: z.array(LedgerEntry) }).openapi("WalletDetail");
const UserParams = z.object({ user_id: IdParam.openapi({ param: { name: "user_id", in: "path" }, example: 1 }) });

export const listWalletsRoute = createRoute({
  method: "get",
  path: "/wallets",
  tags: ["wallet"],
  summary: "Every wallet with its balance",
  responses: { 200: json(z.object({ wallets: z.array(Wallet) }), "Wallets by user id") },
});

export const getWalletRoute = createRoute({
  method: "get",
  path: "/wallets/{user_id}",
  tags: ["wallet"],
  summary: "One balance and its latest ledger entries",
  request: { params: UserParams },
  responses: { 200: json(WalletDetail, "The wallet"), ...errors(400, 404) },
});

export const depositRoute = createRoute({
  method: "post",
  path: "/wallets/{user_id}/deposits",
  tags: ["wallet"],
  summary: "Tops up a wallet (opening it on the first deposit); needs the admin token",
  security: adminSecurity,
  request: {
    params: UserParams,
    body: {
      required: true,
      content: {
        "application/json": {
          schema: z.strictObject({ amount_cents: AmountCents.openapi({ example: 10_000 }) }).openapi("Deposit"),
        },
      },
    },
  },
  responses: { 201: json(Wallet, "The wallet after the deposit"), ...errors(400, 409, 413) },
});
