/** Every error code registry throws, declared once: its services throw them, its routes document them. */
import { declareErrors } from "../../src/errors";

export const REGISTRY_ERRORS = declareErrors("registry", {
  unknown_product: {
    kind: "invalid",
    when: "an item names a product that is not in the catalogue",
    message: "no product 4242",
    field: "items.1.product_id",
  },
  duplicate_product: {
    kind: "invalid",
    when: "a product is listed twice",
    message: "product 2 is listed twice",
    field: "items.1.product_id",
  },
  unknown_order: { kind: "not_found", when: "no order has this id", message: "no order 9d2b7c1e-0f4a-4c3d-8b6e-2a5f1e7d3c90", field: "id" },
  overloaded: {
    kind: "unavailable",
    when: "too many orders are still pending (`max_pending_orders`) and none finished within `admission_wait_ms`; retry after `Retry-After` seconds",
    message: "2000 orders are still in progress; try again shortly",
  },
});
