/** Storage's HTTP contract. */
import { createRoute, z } from "@hono/zod-openapi";
import { adminSecurity } from "../../src/http/auth";
import { errors, IdParam, json } from "../../src/http/schemas";

const Stock = z
  .object({
    product_id: z.number().int(),
    available: z.number().int(),
    reserved: z.number().int(),
    updated_at: z.string(),
  })
  .openapi("Stock", { example: { product_id: 1, available: 40, reserved: 2, updated_at: "2026-01-01T00:00:00.000Z" } });

const ProductParams = z.object({
  product_id: IdParam.openapi({ param: { name: "product_id", in: "path" }, example: 1 }),
});

export const listStockRoute = createRoute({
  method: "get",
  path: "/stock",
  tags: ["storage"],
  summary: "Available and reserved units of every product",
  responses: { 200: json(z.object({ stock: z.array(Stock) }), "Stock by product id") },
});

export const getStockRoute = createRoute({
  method: "get",
  path: "/stock/{product_id}",
  tags: ["storage"],
  summary: "Available and reserved units of one product",
  request: { params: ProductParams },
  responses: { 200: json(Stock, "The product's stock"), ...errors(400, 404) },
});

export const receiveRoute = createRoute({
  method: "post",
  path: "/stock/{product_id}/receipts",
  tags: ["storage"],
  summary: "Adds received units to available stock; needs the admin token",
  security: adminSecurity,
  request: {
    params: ProductParams,
    body: {
      required: true,
      content: {
        "application/json": {
          schema: z
            .strictObject({ quantity: z.number().int().positive().max(1_000_000).openapi({ example: 10 }) })
            .openapi("Receipt"),
        },
      },
    },
  },
  responses: { 201: json(Stock, "The stock after the receipt"), ...errors(400, 404, 413) },
});
