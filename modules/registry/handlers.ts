/** Registry's HTTP handlers: parse, call the service, map the result. */
import type { Database } from "../../src/db/database";
import { createRouter } from "../../src/http/router";
import type { Enqueue } from "../../src/outbox/outbox";
import { createOrderRoute, getOrderRoute, listOrdersRoute, listProductsRoute } from "./routes";
import type { Admission } from "./admission";
import type { Catalogue } from "./catalogue";
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
      await admission.admit();
      const order = await placeOrder(db, catalogue, enqueue, user_id, items);
      return c.json(order, 201);
    })
    .openapi(listOrdersRoute, async (c) => c.json(await listOrders(db, c.req.valid("query")), 200))
    .openapi(getOrderRoute, async (c) => c.json(await getOrder(db, c.req.valid("param").id), 200));
}
