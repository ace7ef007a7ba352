/** Registry's HTTP handlers: parse, call the service, map the result. */

import type { Database } from "../../src/db/database";
import { bearer } from "../../src/http/auth";
import { createRouter } from "../../src/http/router";
import { replay, replayIfAnswered } from "../../src/idempotency";
import type { OutboxWriter } from "../../src/messaging/outbox";
import { auditReportRoute, shopAuditRoute } from "../../src/saga/audit/routes";
import { auditShop, fetchReport } from "../../src/saga/audit/shop-audit";
import { tagActiveSpan } from "../../src/tracing/spans";
import type { Admission } from "./admission";
import { type RegistryAuditSettings, registryAuditReport } from "./audit";
import type { Catalogue } from "./catalogue";
import { AlreadyAnswered, findAnswer, IDEMPOTENCY_HEADER, requestHash } from "./idempotency";
import { stuckSagas } from "./operator";
import { getOrder, listOrders, placeOrder } from "./orders";
import { createOrderRoute, getOrderRoute, listOrdersRoute, listProductsRoute, stuckSagasRoute } from "./routes";

/** The registry router; `outbox` is registry's outbox. */
export function registryRouter(db: Database, catalogue: Catalogue, admission: Admission, outbox: Pick<OutboxWriter, "insert">) {
  return createRouter()
    .openapi(listProductsRoute, async (c) => {
      // The body is serialised once per catalogue version, not per request.
      const { body } = await catalogue.current();
      return c.body(body, 200, { "content-type": "application/json" }) as never;
    })
    .openapi(createOrderRoute, async (c) => {
      const { user_id, items } = c.req.valid("json");
      const key = c.req.valid("header")[IDEMPOTENCY_HEADER];
      const keyed = key === undefined ? undefined : { key, hash: requestHash(user_id, items) };
      try {
        // A key answered already is replayed before admission: a retry never waits behind new orders.
        const earlier = keyed && (await findAnswer(db, keyed));
        if (earlier) return replay(c, earlier, locationOf(earlier.body)) as never;
        await admission.admit();
        const order = await placeOrder(db, catalogue, outbox, user_id, items, keyed);
        return c.json(order, 201, locationOf(order));
      } catch (err) {
        // Answered by a concurrent request with the same key while this one waited.
        const answer = err instanceof AlreadyAnswered ? err.answer : null;
        return replayIfAnswered(c, err, locationOf(answer?.body)) as never;
      }
    })
    .openapi(listOrdersRoute, async (c) => c.json(await listOrders(db, c.req.valid("query")), 200))
    .openapi(getOrderRoute, async (c) => {
      const { id } = c.req.valid("param");
      // A search for the order's id finds its reads too.
      tagActiveSpan({ "shop.order_id": id });
      return c.json(await getOrder(db, id), 200);
    });
}

/** The `Location` of a placed order: its own URL (GET /orders/{id}); none for a stored answer without an id. */
function locationOf(order: unknown): Record<string, string> {
  const id = (order as { id?: unknown } | null)?.id;
  return typeof id === "string" ? { Location: `/orders/${id}` } : {};
}

/** Registry's operator routes (behind the admin token, like every /admin route). */
export function registryAdminRouter(db: Database, opts: { deadlineMs: number; compensationMs: number }) {
  return createRouter().openapi(stuckSagasRoute, async (c) => {
    const { limit } = c.req.valid("query");
    // A pending order gets the sweeper's slack past the deadline (SWEEP_SLACK_MS, as the audit).
    return c.json({ sagas: await stuckSagas(db, { ...opts, limit }) }, 200);
  });
}

/**
 * `GET /admin/audit/report` (registry's own report) and `GET /admin/audit` (the whole shop's):
 * registry's report first, then wallet's and storage's fetched from `peers()` with the caller's
 * admin token (the shell has checked it is this process's token).
 */
export function registryAuditRouter(db: Database, settings: RegistryAuditSettings, peers: () => { wallet: string; storage: string }) {
  return createRouter()
    .openapi(auditReportRoute("registry"), async (c) => c.json(await registryAuditReport(db, settings), 200))
    .openapi(shopAuditRoute, async (c) => {
      const token = bearer(c.req.header("authorization")) ?? undefined;
      const urls = peers();
      const audit = await auditShop({
        registry: () => registryAuditReport(db, settings),
        wallet: () => fetchReport("wallet", urls.wallet, token),
        storage: () => fetchReport("storage", urls.storage, token),
      });
      return c.json(audit, 200);
    });
}
