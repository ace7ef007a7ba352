/** Registry's HTTP contract: the catalogue, orders and the stuck-saga view, with examples the API really gives. */
import { createRoute, z } from "@hono/zod-openapi";
import { MAX_QUANTITY, RejectionReason } from "../../src/contracts";
import { declaredErrors, Id, IdParam, intParam, json, locationHeader, positiveInt, Timestamp, withErrors } from "../../src/http/schemas";
import { idempotencyKeyHeaders, KEY_REUSED, replayedHeader } from "../../src/idempotency";
import { REGISTRY_ERRORS } from "./errors";

const ORDER_STATUSES = ["pending", "completed", "rejected"] as const;
/** A rejected order's reasons (the bus contract's), and null; documented only: the service reads them as text. */
const REASONS = [...RejectionReason.options, null];

const Product = z
  .object({
    id: z.int().describe("Product id"),
    sku: z.string().describe("Stock-keeping unit"),
    name: z.string().describe("Name shown to customers"),
    price_cents: z.int().describe("Unit price in cents"),
  })
  .describe("A product of the catalogue")
  .openapi("Product");

const OrderItem = z
  .object({
    product_id: z.int().describe("Product id"),
    quantity: z.int().describe("Units ordered"),
    unit_price_cents: z.int().describe("The product's price in cents when the order was placed"),
    line_total_cents: z.int().describe("quantity × unit_price_cents"),
  })
  .describe("One line of an order, priced when it was placed")
  .openapi("OrderItem");

const Order = z
  .object({
    id: z.uuid().describe("Order id"),
    user_id: z.int().describe("The customer (their wallet's user id)"),
    status: z
      .enum(ORDER_STATUSES)
      .describe("`pending` until the saga decides; `completed` once paid and reserved; `rejected` on the first refusal or the deadline"),
    reason: z
      .string()
      .nullable()
      .openapi({ enum: REASONS })
      .describe("Why a rejected order was rejected (the first refusal); null unless `status` is `rejected`"),
    compensation: z
      .enum(["pending", "done"])
      .nullable()
      .describe(
        "For a rejected order: `done` once wallet and storage confirmed they undid their part, `pending` until then; null otherwise",
      ),
    total_cents: z.int().describe("Sum of the line totals, in cents"),
    items: z.array(OrderItem).describe("The lines, as ordered"),
    created_at: Timestamp.describe("When it was placed"),
    updated_at: Timestamp.describe("When its status last changed"),
  })
  .describe("An order and where its saga stands")
  .openapi("Order");

const TimelineEntry = z
  .object({
    at: Timestamp.describe("When the step was recorded"),
    service: z
      .string()
      .openapi({ enum: ["registry", "wallet", "storage"] })
      .describe("Who took the step"),
    step: z
      .string()
      .openapi({ enum: ["created", "paid", "reserved", "completed", "rejected", "refunded", "released", "nothing_to_undo"] })
      .describe("What happened: placed, paid, reserved, completed, rejected, or a compensation (refunded, released, nothing_to_undo)"),
    detail: z.string().nullable().describe("Amounts or the rejection's reason and message; null when there is nothing to add"),
  })
  .describe("One step of an order's saga")
  .openapi("TimelineEntry");

/** Also the base of the live page's LiveOrder (live/routes.ts). */
export const OrderDetail = Order.extend({ timeline: z.array(TimelineEntry).describe("The saga's steps, oldest first") })
  .describe("An order with its saga timeline")
  .openapi("OrderDetail");

// Strict: an unknown field is a 400 naming it, not silently dropped.
const NewOrder = z
  .strictObject({
    user_id: Id.describe("The customer: the wallet debited"),
    items: z
      .array(
        z
          .strictObject({
            product_id: Id.describe("A product of the catalogue, at most once per order"),
            quantity: positiveInt(MAX_QUANTITY).describe(`Units, 1 to ${MAX_QUANTITY}`),
          })
          .describe("One line"),
      )
      .min(1)
      .max(50)
      .describe("1 to 50 lines, each product at most once"),
  })
  .describe("An order to place; unknown fields are refused")
  .openapi("NewOrder");

/** Real answers, one order throughout: user 1 buys a keyboard and two mice (catalogue of config/registry.yaml). */
const ORDER_ID = "3f6c1a52-8d4e-4b8e-9a57-2c1d0e9b7a41";
const PLACED_AT = "2026-03-14T09:26:53.589Z";
const DECIDED_AT = "2026-03-14T09:26:53.647Z";
const ITEMS = [
  { product_id: 1, quantity: 1, unit_price_cents: 8999, line_total_cents: 8999 },
  { product_id: 2, quantity: 2, unit_price_cents: 2999, line_total_cents: 5998 },
];
const PENDING = {
  id: ORDER_ID,
  user_id: 1,
  status: "pending" as const,
  reason: null,
  compensation: null,
  total_cents: 14997,
  items: ITEMS,
  created_at: PLACED_AT,
  updated_at: PLACED_AT,
};
const COMPLETED = { ...PENDING, status: "completed" as const, updated_at: DECIDED_AT };
const REJECTED = {
  id: "b0e5f7d2-1c3a-4f69-8e2b-5d7c9a1e4f30",
  user_id: 6,
  status: "rejected" as const,
  reason: "insufficient_funds" as const,
  compensation: "done" as const,
  total_cents: 999,
  items: [{ product_id: 7, quantity: 1, unit_price_cents: 999, line_total_cents: 999 }],
  created_at: "2026-03-14T09:25:10.002Z",
  updated_at: "2026-03-14T09:25:10.071Z",
};

export const listProductsRoute = createRoute(
  withErrors({
    method: "get",
    path: "/products",
    tags: ["registry"],
    summary: "The catalogue",
    description: "Every product that can be ordered, by id, with its current price in cents.",
    responses: {
      200: json(z.object({ products: z.array(Product).describe("Every product, by id") }), "The catalogue", {
        products: [
          { id: 1, sku: "KB-001", name: "Mechanical keyboard", price_cents: 8999 },
          { id: 2, sku: "MS-002", name: "Wireless mouse", price_cents: 2999 },
        ],
      }),
    },
  }),
);

/** `Idempotency-Key` on orders: what a first request and a repeat do. */
const ORDER_KEY = {
  does: "places the order",
  repeat: "places nothing",
  afterRetention: "places a new order",
  setting: "registry's `idempotency_key_retention_hours`",
};

export const createOrderRoute = createRoute(
  withErrors(
    {
      method: "post",
      path: "/orders",
      tags: ["registry"],
      summary: "Places an order; it starts pending and the saga decides it",
      description:
        "Prices the items from the catalogue and stores the order as `pending`; wallet then debits the total and storage " +
        "reserves the items, and the order becomes `completed`, or `rejected` with a reason (any refusal, or no outcome " +
        "within the saga deadline) while what was done is undone. Follow `Location` (GET /orders/{id}) for the outcome. " +
        "While too many orders are still pending, a new one waits briefly and may be refused with 503 `overloaded`.",
      request: {
        headers: idempotencyKeyHeaders(ORDER_KEY),
        body: {
          required: true,
          description: "Who orders what",
          content: {
            "application/json": {
              schema: NewOrder,
              example: {
                user_id: 1,
                items: [
                  { product_id: 1, quantity: 1 },
                  { product_id: 2, quantity: 2 },
                ],
              },
            },
          },
        },
      },
      responses: {
        201: {
          ...json(Order, "The pending order (or, for a repeated Idempotency-Key, the order first answered)", PENDING),
          headers: {
            ...locationHeader("The order's own URL (GET /orders/{id})", `/orders/${ORDER_ID}`),
            ...replayedHeader("nothing was placed"),
          },
        },
      },
    },
    [
      {
        400: {
          invalid_request: {
            when: "a field is missing, of the wrong type or out of range, an unknown field, or a bad Idempotency-Key (`field` names it)",
            message: "items.0.quantity: Too small: expected number to be >0",
            field: "items.0.quantity",
          },
        },
      },
      declaredErrors(REGISTRY_ERRORS, "unknown_product", "duplicate_product"),
      KEY_REUSED,
      declaredErrors(REGISTRY_ERRORS, "overloaded"),
    ],
  ),
);

export const listOrdersRoute = createRoute(
  withErrors(
    {
      method: "get",
      path: "/orders",
      tags: ["registry"],
      summary: "Orders, newest first, a page at a time",
      description: "Filter by user and status; pass `next_cursor` back as `cursor` for the next page (null on the last).",
      request: {
        query: z.object({
          user_id: IdParam.optional().openapi({ description: "Only this user's orders", example: 1 }),
          status: z.enum(ORDER_STATUSES).optional().openapi({ description: "Only orders in this state", example: "completed" }),
          limit: intParam((i) => i.min(1).max(100))
            .default(20)
            .openapi({ description: "Orders per page, 1 to 100", example: 20 }),
          cursor: intParam((i) => i.positive())
            .optional()
            .openapi({ description: "`next_cursor` of the previous page", example: 4128 }),
        }),
      },
      responses: {
        200: json(
          z.object({
            orders: z.array(Order).describe("Newest first"),
            next_cursor: z.string().nullable().describe("Pass as `cursor` for the next page; null on the last page"),
          }),
          "A page of orders",
          { orders: [COMPLETED, REJECTED], next_cursor: "4127" },
        ),
      },
    },
    {
      400: {
        invalid_request: {
          when: "a query parameter is out of range or not written in decimal digits (`field` names it)",
          message: "limit: Too big: expected number to be <=100",
          field: "limit",
        },
      },
    },
  ),
);

export const getOrderRoute = createRoute(
  withErrors(
    {
      method: "get",
      path: "/orders/{id}",
      tags: ["registry"],
      summary: "One order with its saga timeline",
      description: "The order's state and every step of its saga so far (the `Location` of POST /orders).",
      request: {
        params: z.object({ id: z.uuid().openapi({ param: { name: "id", in: "path" }, description: "Order id", example: ORDER_ID }) }),
      },
      responses: {
        200: json(OrderDetail, "The order", {
          ...COMPLETED,
          timeline: [
            { at: PLACED_AT, service: "registry", step: "created", detail: "total 14997 cents" },
            { at: "2026-03-14T09:26:53.631Z", service: "wallet", step: "paid", detail: null },
            { at: "2026-03-14T09:26:53.640Z", service: "storage", step: "reserved", detail: null },
            { at: DECIDED_AT, service: "registry", step: "completed", detail: null },
          ],
        }),
      },
    },
    [
      { 400: { invalid_request: { when: "`id` is not a UUID", message: "id: Invalid UUID", field: "id" } } },
      declaredErrors(REGISTRY_ERRORS, "unknown_order"),
    ],
  ),
);

const StuckSaga = z
  .object({
    order_id: z.uuid().describe("Order id"),
    status: z.enum(ORDER_STATUSES).describe("The order's status"),
    reason: z.string().nullable().openapi({ enum: REASONS }).describe("Why it was rejected; null while pending"),
    overdue: z
      .enum(["outcome", "compensation"])
      .describe(
        "`outcome`: still pending past the saga deadline; `compensation`: rejected, and a participant has not confirmed its undoing",
      ),
    waiting_for: z.array(z.enum(["wallet", "storage"])).describe("The participants that have not answered"),
    created_at: Timestamp.describe("When the order was placed"),
    updated_at: Timestamp.describe("When its status last changed"),
    overdue_seconds: z.int().describe("Seconds past its deadline"),
  })
  .describe("A saga whose outcome or compensation is overdue")
  .openapi("StuckSaga");

export const stuckSagasRoute = createRoute(
  withErrors(
    {
      method: "get",
      path: "/admin/sagas/stuck",
      tags: ["admin"],
      summary: "Orders whose outcome or compensations are overdue, oldest first",
      description:
        "A pending order past the saga deadline (plus a few seconds for the sweeper), or a rejected one whose " +
        "compensations are not all confirmed within `compensation_deadline_seconds`. Empty when all is well.",
      request: {
        query: z.object({
          limit: intParam((i) => i.min(1).max(1000))
            .default(100)
            .openapi({ description: "At most this many, 1 to 1000", example: 100 }),
        }),
      },
      responses: {
        200: json(z.object({ sagas: z.array(StuckSaga).describe("Oldest first") }), "Overdue sagas", {
          sagas: [
            {
              order_id: "c71d9e04-5b2a-4e8f-9c3d-7a6b1f0e2d58",
              status: "rejected",
              reason: "out_of_stock",
              overdue: "compensation",
              waiting_for: ["wallet"],
              created_at: "2026-03-14T08:58:21.310Z",
              updated_at: "2026-03-14T08:58:21.377Z",
              overdue_seconds: 42,
            },
          ],
        }),
      },
    },
    {
      400: {
        invalid_request: {
          when: "`limit` is out of range or not decimal digits",
          message: "limit: Too big: expected number to be <=1000",
          field: "limit",
        },
      },
    },
  ),
);
