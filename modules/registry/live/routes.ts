/** The live order page's HTTP contract: the page, its event stream, and balances and stock beside it. */
import { createRoute, z } from "@hono/zod-openapi";
import { errors, json } from "../../../src/http/schemas";

const TimelineEntry = z.object({ at: z.string(), service: z.string(), step: z.string(), detail: z.string().nullable() });

const LiveOrder = z
  .object({
    id: z.uuid(),
    user_id: z.number().int(),
    status: z.enum(["pending", "completed", "rejected"]),
    reason: z.string().nullable(),
    compensation: z.enum(["pending", "done"]).nullable(),
    total_cents: z.number().int(),
    items: z.array(
      z.object({
        product_id: z.number().int(),
        quantity: z.number().int(),
        unit_price_cents: z.number().int(),
        line_total_cents: z.number().int(),
      }),
    ),
    created_at: z.string(),
    updated_at: z.string(),
    timeline: z.array(TimelineEntry),
    version: z.number().int().openapi({ description: "Id of the order's latest timeline entry: a copy with a lower version is older" }),
  })
  .openapi("LiveOrder");

export const livePageRoute = createRoute({
  method: "get",
  path: "/",
  tags: ["live"],
  summary: "The live order page",
  description:
    "A plain HTML page (no build step, nothing fetched from elsewhere) showing the newest orders and each one's saga timeline " +
    "as they change (from `GET /live/events`), balances and stock beside them (`GET /live/overview`), and a form that places an order.",
  responses: { 200: { description: "The page", content: { "text/html": { schema: z.string() } } } },
});

export const liveEventsRoute = createRoute({
  method: "get",
  path: "/live/events",
  tags: ["live"],
  summary: "Order changes as server-sent events",
  description:
    "A `text/event-stream` that stays open. On connecting: `retry: 3000`, then one `snapshot` event " +
    "(`data: {\"orders\": [LiveOrder, ...]}`, newest first). Then an `order` event (`data: LiveOrder`, the whole order) " +
    "whenever an order is placed or its status, compensation or timeline changes, in any registry process sharing the database " +
    "(seen within a poll interval, 250 ms). Each event's `id:` is the version it carries. A comment line (`: heartbeat`) comes " +
    "every 5 s. A client that reconnects gets a fresh snapshot. In a burst, only the newest 100 changed orders per interval are sent.",
  responses: {
    200: {
      description: "The event stream",
      content: {
        "text/event-stream": {
          schema: z.string().openapi({
            example: 'id: 42\nevent: order\ndata: {"id":"…","status":"completed","timeline":[…],"version":42}\n\n: heartbeat\n\n',
          }),
        },
      },
    },
    ...errors(503),
  },
});

/** Referenced so that the generated document describes the events' data. */
export const LiveSnapshot = z.object({ orders: z.array(LiveOrder) }).openapi("LiveSnapshot");

const Overview = z
  .object({
    wallets: z.array(z.object({ user_id: z.number().int(), balance_cents: z.number().int() })),
    wallets_total: z.number().int().openapi({ description: "Wallets in all; the first 200 by user id are listed" }),
    stock: z.array(z.object({ product_id: z.number().int(), available: z.number().int(), reserved: z.number().int() })),
    stock_total: z.number().int().openapi({ description: "Products in stock in all; the first 200 by id are listed" }),
    unavailable: z.array(z.object({ service: z.enum(["wallet", "storage"]), message: z.string() })).openapi({
      description: "Services that did not answer (their list is then empty)",
    }),
    fetched_at: z.string(),
  })
  .openapi("LiveOverview");

export const liveOverviewRoute = createRoute({
  method: "get",
  path: "/live/overview",
  tags: ["live"],
  summary: "Balances and stock, as wallet and storage report them",
  description:
    "Registry asks wallet (`GET /wallets`) and storage (`GET /stock`) over HTTP, in one process as in the split deployment, " +
    "and answers at most every 0.5 s from a fresh fetch. A service that does not answer is named in `unavailable`.",
  responses: { 200: json(Overview, "Balances and stock") },
});
