/** Registry's HTTP contract. */
import { createRoute, z } from "@hono/zod-openapi";
import { MAX_QUANTITY } from "../../src/contracts";
import { ErrorBodySchema } from "../../src/http/errors";
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
    compensation: z.enum(["pending", "done"]).nullable().openapi({
      description: "For a rejected order: `done` once wallet and storage confirmed they undid their part, `pending` until then; null otherwise",
    }),
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

// Strict: an unknown field is a 400 naming it, not silently dropped.
const NewOrder = z
  .strictObject({
    user_id: Id.openapi({ example: 1 }),
    items: z
      .array(
        z.strictObject({
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

/** 1 to 255 visible ASCII characters (inner spaces allowed). */
const IdempotencyKey = z
  .string()
  .regex(/^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$/, "expected 1 to 255 visible ASCII characters")
  .optional()
  .openapi({
    description:
      "Makes retries safe: the first request with a key places the order; the same key with the same body " +
      "(also while the first is in flight) answers that first answer again, with `Idempotent-Replayed: true`, " +
      "and places nothing; the same key with another body is refused (422 `idempotency_key_reused`). " +
      "Keys are kept `idempotency_key_retention_hours` (24 h); after that the key places a new order.",
    example: "0f8fad5b-d9cb-469f-a165-70867728950e",
  });

export const createOrderRoute = createRoute({
  method: "post",
  path: "/orders",
  tags: ["registry"],
  summary: "Places an order; it starts pending and the saga decides it",
  request: {
    headers: z.object({ "Idempotency-Key": IdempotencyKey }),
    body: { required: true, content: { "application/json": { schema: NewOrder } } },
  },
  responses: {
    201: {
      ...json(Order, "The pending order (or, for a repeated Idempotency-Key, the order first answered)"),
      headers: {
        "Idempotent-Replayed": {
          description: "`true` when this is the answer first given for the same Idempotency-Key",
          schema: { type: "string", enum: ["true"] },
        },
      },
    },
    ...errors(400, 413, 503),
    422: json(ErrorBodySchema, "Unknown or repeated product (`unknown_product`, `duplicate_product`), or an Idempotency-Key used with another body (`idempotency_key_reused`)"),
  },
});

export const listOrdersRoute = createRoute({
  method: "get",
  path: "/orders",
  tags: ["registry"],
  summary: "Orders, newest first, a page at a time",
  request: {
    query: z.object({
      user_id: IdParam.optional().openapi({ example: 1 }),
      status: z.enum(["pending", "completed", "rejected"]).optional().openapi({ example: "rejected" }),
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

const StuckSaga = z
  .object({
    order_id: z.uuid(),
    status: z.enum(["pending", "completed", "rejected"]),
    reason: z.string().nullable(),
    overdue: z.enum(["outcome", "compensation"]).openapi({
      description: "`outcome`: still pending past the saga deadline; `compensation`: rejected, and a participant has not confirmed its undoing",
    }),
    waiting_for: z.array(z.enum(["wallet", "storage"])),
    created_at: z.string(),
    updated_at: z.string(),
    overdue_seconds: z.number().int(),
  })
  .openapi("StuckSaga");

export const stuckSagasRoute = createRoute({
  method: "get",
  path: "/admin/sagas/stuck",
  tags: ["admin"],
  summary: "Orders whose outcome or compensations are overdue, oldest first",
  request: { query: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) }) },
  responses: { 200: json(z.object({ sagas: z.array(StuckSaga) }), "Overdue sagas"), ...errors(400) },
});
