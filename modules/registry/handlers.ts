/** Registry's HTTP handlers: parse, call the service, map the result. */
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { Database } from "../../src/db/database";
import { createRouter } from "../../src/http/router";
import type { Enqueue } from "../../src/outbox/outbox";
import { createOrderRoute, getOrderRoute, listOrdersRoute, listProductsRoute } from "./routes";
import type { Admission } from "./admission";
import type { Catalogue } from "./catalogue";
import { AlreadyAnswered, findAnswer, IDEMPOTENCY_HEADER, REPLAYED_HEADER, requestHash, type StoredAnswer } from "./idempotency";
import { getOrder, listOrders, placeOrder } from "./service";

/** The registry router; `enqueue` writes to registry's outbox. */
export function registryRouter(db: Database, catalogue: Catalogue, admission: Admission, enqueue: Enqueue) {
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
      const replay = (answer: StoredAnswer) =>
        c.body(JSON.stringify(answer.body), answer.statusCode as ContentfulStatusCode, {
          "content-type": "application/json",
          [REPLAYED_HEADER]: "true",
        }) as never;
      try {
        // A key answered already is replayed before admission: a retry never waits behind new orders.
        const earlier = keyed && (await findAnswer(db, keyed));
        if (earlier) return replay(earlier);
        await admission.admit();
        const order = await placeOrder(db, catalogue, enqueue, user_id, items, keyed);
        return c.json(order, 201);
      } catch (err) {
        // Answered by a concurrent request with the same key while this one waited.
        if (err instanceof AlreadyAnswered) return replay(err.answer);
        throw err;
      }
    })
    .openapi(listOrdersRoute, async (c) => c.json(await listOrders(db, c.req.valid("query")), 200))
    .openapi(getOrderRoute, async (c) => c.json(await getOrder(db, c.req.valid("param").id), 200));
}
