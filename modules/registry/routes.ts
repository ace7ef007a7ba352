/** Registry's HTTP contract. */
import { createRoute, z } from "@hono/zod-openapi";
import { MAX_QUANTITY } from "../../src/contracts";
import { errors, Id, IdParam, json } from "../../src/http/schemas";

const Product = z
  .object({ id: z.number().int(), sku: z.string(), name: z.string(), price_cents: z.number().int() })
  .openapi("Product", { example: { id: 1, sku: "KB-001", name: "Keyboard", price_cents: 4_999 } });

const OrderItem = z
  .object({
    product_id: z.number().int(),
    quantity: z.number().int(),
    unit_price_cents: z.number().int(),
    line_total_cents: z.number().int(),
  })
  .openapi("OrderItem");

const Order = z
  .object({
    id: z.uuid(),
    user_id: z.number().int(),
    status: z.enum(["pending", "completed", "rejected"]),
    reason: z.string().nullable().openapi({ example: "insufficient_funds" }),
    total_cents: z.number().int(),
    items: z.array(OrderItem),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Order");

const TimelineEntry = z
  .object({ at: z.string(), service: z.string(), step: z.string(), detail: z.string().nullable() })
  .openapi("TimelineEntry");

const OrderDetail = Order.extend({ timeline: z.array(TimelineEntry) }).openapi("OrderDetail");

const NewOrder = z
  .object({
    user_id: Id.openapi({ example: 1 }),
    items: z
      .array(
        z.object({
          product_id: Id.openapi({ example: 1 }),
          quantity: z.number().int().positive().max(MAX_QUANTITY).openapi({ example: 2 }),
        }),
      )
      .min(1)
      .max(50),
  })
  .openapi("NewOrder");

export const listProductsRoute = createRoute({
  method: "get",
  path: "/products",
  tags: ["registry"],
  summary: "The catalogue",
  responses: { 200: json(z.object({ products: z.array(Product) }), "Products by id") },
});

export const createOrderRoute = createRoute({
  method: "post",
  path: "/orders",
  tags: ["registry"],
  summary: "Places an order; it starts pending and the saga decides it",
  request: { body: { required: true, content: { "application/json": { schema: NewOrder } } } },
  responses: { 201: json(Order, "The pending order"), ...errors(400, 413, 422, 503) },
});

export const listOrdersRoute = createRoute({
  method: "get",
  path: "/orders",
  tags: ["registry"],
  summary: "Orders, newest first, a page at a time",
  request: {
    query: z.object({
      user_id: IdParam.optional().openapi({ example: 1 }),
      limit: z.coerce.number().int().min(1).max(100).default(20),
      cursor: z.coerce.number().int().positive().optional().openapi({ description: "next_cursor of the previous page" }),
    }),
  },
  responses: {
    200: json(z.object({ orders: z.array(Order), next_cursor: z.string().nullable() }), "A page of orders"),
    ...errors(400),
  },
});

export const getOrderRoute = createRoute({
  method: "get",
  path: "/orders/{id}",
  tags: ["registry"],
  summary: "One order with its saga timeline",
  request: { params: z.object({ id: z.uuid().openapi({ param: { name: "id", in: "path" } }) }) },
  responses: { 200: json(OrderDetail, "The order"), ...errors(400, 404) },
});
