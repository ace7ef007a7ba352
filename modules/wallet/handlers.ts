/** Wallet's HTTP handlers: parse, call the service, map the result. */
import { auditReportRoute } from "../../src/audit/routes";
import type { Database } from "../../src/db/database";
import { createRouter } from "../../src/http/router";
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
      return c.json(await deposit(db, user_id, amount_cents), 201, { Location: `/wallets/${user_id}` });
    })
    .openapi(auditReportRoute("wallet"), async (c) => c.json(await walletAuditReport(db), 200));
}
