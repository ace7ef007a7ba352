/** Storage's HTTP contract: stock per product and receipts, with examples the API really gives. */
import { createRoute, z } from "@hono/zod-openapi";
import { adminSecurity } from "../../src/http/auth";
import { declaredErrors, IdParam, json, locationHeader, positiveInt, Timestamp, withErrors } from "../../src/http/schemas";
import { idempotencyKeyHeaders, KEY_REUSED, replayedHeader } from "../../src/idempotency";
import { STORAGE_ERRORS } from "./errors";

const Stock = z
  .object({
    product_id: z.int().describe("Product id (the registry's catalogue)"),
    available: z.int().describe("Units that can be reserved by new orders"),
    reserved: z.int().describe("Units held for orders (released again if an order is rejected)"),
    updated_at: Timestamp.describe("When the stock last changed"),
  })
  .describe("A product's stock")
  .openapi("Stock");

const ProductParams = z.object({
  product_id: IdParam.openapi({ param: { name: "product_id", in: "path" }, description: "Product id (decimal digits)", example: 2 }),
});

/** Real answers for one product: 40 mice received, then an order reserved 2. */
const RECEIVED = { product_id: 2, available: 40, reserved: 0, updated_at: "2026-03-14T09:21:07.118Z" };
const RESERVED = { product_id: 2, available: 38, reserved: 2, updated_at: "2026-03-14T09:26:53.640Z" };

export const listStockRoute = createRoute(
  withErrors({
    method: "get",
    path: "/stock",
    tags: ["storage"],
    summary: "Available and reserved units of every product",
    description: "Every product storage keeps stock for (seeded from config/storage.yaml), by product id.",
    responses: {
      200: json(z.object({ stock: z.array(Stock).describe("By product id") }), "Every product's stock", {
        stock: [{ product_id: 1, available: 25, reserved: 1, updated_at: "2026-03-14T09:26:53.640Z" }, RESERVED],
      }),
    },
  }),
);

export const getStockRoute = createRoute(
  withErrors(
    {
      method: "get",
      path: "/stock/{product_id}",
      tags: ["storage"],
      summary: "Available and reserved units of one product",
      description: "One product's stock.",
      request: { params: ProductParams },
      responses: { 200: json(Stock, "The product's stock", RESERVED) },
    },
    [
      {
        400: {
          invalid_request: {
            when: "`product_id` is not a positive integer in decimal digits (`1e2`, `0x10`, `007` are refused)",
            message: "product_id: expected an integer written in decimal digits",
            field: "product_id",
          },
        },
      },
      declaredErrors(STORAGE_ERRORS, "unknown_product"),
    ],
  ),
);

export const receiveRoute = createRoute(
  withErrors(
    {
      method: "post",
      path: "/stock/{product_id}/receipts",
      tags: ["storage"],
      summary: "Adds received units to available stock; needs the admin token",
      description:
        "Adds `quantity` to the product's available units and records the receipt, in one transaction. A product holds at most " +
        "2 147 483 647 units, available and reserved together (409 `stock_limit` past that). Send an `Idempotency-Key` to " +
        "retry safely: a receipt that timed out is either answered again or made once.",
      security: adminSecurity,
      request: {
        params: ProductParams,
        headers: idempotencyKeyHeaders({
          does: "records the receipt",
          repeat: "adds nothing",
          afterRetention: "records a new receipt",
          setting: "storage's `idempotency_key_retention_hours`",
        }),
        body: {
          required: true,
          description: "How many units arrived",
          content: {
            "application/json": {
              schema: z
                .strictObject({ quantity: positiveInt(1_000_000).describe("Units received, 1 to 1 000 000") })
                .describe("A receipt; unknown fields are refused")
                .openapi("Receipt"),
              example: { quantity: 40 },
            },
          },
        },
      },
      responses: {
        201: {
          ...json(Stock, "The stock after the receipt (for a repeated Idempotency-Key, as first answered)", RECEIVED),
          headers: {
            ...locationHeader("The product's stock URL (GET /stock/{product_id})", "/stock/2"),
            ...replayedHeader("nothing was added"),
          },
        },
      },
    },
    [
      {
        400: {
          invalid_request: {
            when: "`product_id` or `quantity` is missing, not an integer or out of range, an unknown field, or a bad Idempotency-Key (`field` names it)",
            message: "quantity: Too big: expected number to be <=1000000",
            field: "quantity",
          },
        },
      },
      declaredErrors(STORAGE_ERRORS, "unknown_product", "stock_limit"),
      KEY_REUSED,
    ],
  ),
);
