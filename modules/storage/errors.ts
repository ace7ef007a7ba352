/** Every error code storage throws, declared once: its service throws them, its routes document them. */
import { declareErrors } from "../../src/errors";

export const STORAGE_ERRORS = declareErrors("storage", {
  unknown_product: {
    kind: "not_found",
    when: "storage keeps no stock for this product",
    message: "no stock kept for product 999999",
    field: "product_id",
  },
  stock_limit: {
    kind: "conflict",
    when: "available plus reserved units would pass 2 147 483 647 (the most a product can hold); nothing is added",
    message: "product 12 would hold more than 2147483647 units (available 2147000000, reserved 0, received 1000000)",
    field: "quantity",
  },
});
