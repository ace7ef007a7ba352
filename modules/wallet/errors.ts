/** Every error code wallet throws, declared once: its service throws them, its routes document them. */
import { declareErrors } from "../../src/errors";

export const WALLET_ERRORS = declareErrors("wallet", {
  unknown_wallet: { kind: "not_found", when: "the user has no wallet", message: "no wallet for user 424242", field: "user_id" },
  balance_limit: {
    kind: "conflict",
    when: "the balance would pass 2^53 - 1 cents (the largest it can hold exactly)",
    message: "the balance would exceed its limit",
    field: "amount_cents",
  },
});
