/** Registry's HTTP handlers: parse, call the service, map the result. */
import type { Database } from "../../src/db/database";
import { createRouter } from "../../src/http/router";
import type { Enqueue } from "../../src/outbox/outbox";
import { createOrderRoute, getOrderRoute, listOrdersRoute, listProductsRoute } from "./routes";
import { getOrder, listOrders, listProducts, placeOrder } from "./service";

/** The registry router; `committed` is called after an order's transaction committed. */
export function registryRouter(db: Database, enqueue: Enqueue, committed: () => void) {
  return createRouter()
    .openapi(listProductsRoute, async (c) => c.json({ products: await listProducts(db) }, 200))
    .openapi(createOrderRoute, async (c) => {
      const { user_id, items } = c.req.valid("json");
      const order = await placeOrder(db, enqueue, user_id, items);
      committed();
      return c.json(order, 201);
    })
    .openapi(listOrdersRoute, async (c) => c.json(await listOrders(db, c.req.valid("query")), 200))
    .openapi(getOrderRoute, async (c) => c.json(await getOrder(db, c.req.valid("param").id), 200));
}
