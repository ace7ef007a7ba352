/** Wallet's HTTP handlers: parse, call the service, map the result. */

import type { Database } from "../../src/db/database";
import { createRouter } from "../../src/http/router";
import { IDEMPOTENCY_HEADER, keyedRequest, replayIfAnswered } from "../../src/idempotency";
import { auditReportRoute } from "../../src/saga/audit/routes";
import { walletAuditReport } from "./audit";
import { depositRoute, getWalletRoute, listWalletsRoute } from "./routes";
import { deposit, getWallet, listWallets } from "./service";

/** The wallet router over `db`. */
export function walletRouter(db: Database) {
  return createRouter()
    .openapi(listWalletsRoute, async (c) => c.json({ wallets: await listWallets(db) }, 200))
    .openapi(getWalletRoute, async (c) => c.json(await getWallet(db, c.req.valid("param").user_id), 200))
    .openapi(depositRoute, async (c) => {
      const { user_id } = c.req.valid("param");
      const { amount_cents } = c.req.valid("json");
      const keyed = keyedRequest(c.req.valid("header")[IDEMPOTENCY_HEADER], [user_id, amount_cents]);
      const location = { Location: `/wallets/${user_id}` };
      try {
        return c.json(await deposit(db, user_id, amount_cents, keyed), 201, location);
      } catch (err) {
        return replayIfAnswered(c, err, location) as never;
      }
    })
    .openapi(auditReportRoute("wallet"), async (c) => c.json(await walletAuditReport(db), 200));
}
