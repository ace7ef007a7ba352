/** Storage's HTTP handlers: parse, call the service, map the result. */

import type { Database } from "../../src/db/database";
import { createRouter } from "../../src/http/router";
import { IDEMPOTENCY_HEADER, keyedRequest, replayIfAnswered } from "../../src/idempotency";
import { auditReportRoute } from "../../src/saga/audit/routes";
import { storageAuditReport } from "./audit";
import { getStockRoute, listStockRoute, receiveRoute } from "./routes";
import { getStock, listStock, receive } from "./service";

/** The storage router over `db`. */
export function storageRouter(db: Database) {
  return createRouter()
    .openapi(listStockRoute, async (c) => c.json({ stock: await listStock(db) }, 200))
    .openapi(getStockRoute, async (c) => c.json(await getStock(db, c.req.valid("param").product_id), 200))
    .openapi(receiveRoute, async (c) => {
      const { product_id } = c.req.valid("param");
      const { quantity } = c.req.valid("json");
      const keyed = keyedRequest(c.req.valid("header")[IDEMPOTENCY_HEADER], [product_id, quantity]);
      const location = { Location: `/stock/${product_id}` };
      try {
        return c.json(await receive(db, product_id, quantity, keyed), 201, location);
      } catch (err) {
        return replayIfAnswered(c, err, location) as never;
      }
    })
    .openapi(auditReportRoute("storage"), async (c) => c.json(await storageAuditReport(db), 200));
}
