/** The live order page's HTTP contract: the page, its event stream, and balances and stock beside it. */
import { createRoute, z } from "@hono/zod-openapi";
import { errorBody, errorSchema } from "../../../src/http/errors";
import { json, Timestamp, withErrors } from "../../../src/http/schemas";
import { OrderDetail } from "../routes";

/** An order as the stream sends it: whole, with its timeline and a version. */
const LiveOrder = OrderDetail.extend({
  version: z.int().describe("Id of the order's latest timeline entry: of two copies of an order, the one with the higher version is newer"),
  trace_id: z
    .string()
    .regex(/^[0-9a-f]{32}$/)
    .nullable()
    .describe("The W3C trace id of the request that placed the order (32 hex digits), or null when tracing was off"),
})
  .describe("An order with its saga timeline, as the live stream sends it")
  .openapi("LiveOrder");

/** The first event of every connection. */
export const LiveSnapshot = z
  .object({
    orders: z.array(LiveOrder).describe("The newest orders (30 at most), newest first"),
    trace_url: z
      .string()
      .nullable()
      .describe(
        "registry.yaml's `trace_url`: a trace viewer's URL where `{trace_id}` stands for an order's `trace_id`; null when unset (no trace links)",
      ),
  })
  .describe("The `data` of the `snapshot` event")
  .openapi("LiveSnapshot");

const EXAMPLE_ORDER = {
  id: "3f6c1a52-8d4e-4b8e-9a57-2c1d0e9b7a41",
  user_id: 1,
  status: "completed",
  reason: null,
  compensation: null,
  total_cents: 2000,
  items: [{ product_id: 2, quantity: 2, unit_price_cents: 1000, line_total_cents: 2000 }],
  created_at: "2026-03-14T09:26:53.589Z",
  updated_at: "2026-03-14T09:26:53.647Z",
  timeline: [
    { at: "2026-03-14T09:26:53.589Z", service: "registry", step: "created", detail: "total 2000 cents" },
    { at: "2026-03-14T09:26:53.631Z", service: "wallet", step: "paid", detail: null },
    { at: "2026-03-14T09:26:53.640Z", service: "storage", step: "reserved", detail: null },
    { at: "2026-03-14T09:26:53.647Z", service: "registry", step: "completed", detail: null },
  ],
  version: 42,
  trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
};

export const livePageRoute = createRoute(
  withErrors(
    {
      method: "get",
      path: "/",
      tags: ["live"],
      summary: "The live order page",
      description:
        "A plain HTML page (no build step, nothing fetched from elsewhere) showing the newest orders and each one's saga timeline " +
        "as they change (from `GET /live/events`), balances and stock beside them (`GET /live/overview`), and a form that places " +
        "an order (`POST /orders`) and shows the answer. With `trace_url` set, each traced order links to its trace in that " +
        "viewer (a new tab). It needs no admin token.",
      responses: { 200: { description: "The page", content: { "text/html": { schema: z.string().describe("An HTML document") } } } },
    },
    {},
    { database: false },
  ),
);

/** The per-address refusal's message (also what the route answers). */
export const TOO_MANY_FROM_ADDRESS_MESSAGE = "too many live streams from your address; close one (another tab?) or retry shortly";

// 429 is not a status of the shared error shell (src/http/errors.ts), so it is documented here in the same shape.
const tooManyFromAddress = {
  description:
    "Too many streams from one address. `too_many_clients_from_address`: `live_max_clients_per_address` (20) streams from this " +
    "client's IP address (its /64 for IPv6) are open already and none of them is stuck; retry after `Retry-After` seconds.",
  headers: {
    "Retry-After": { description: "Seconds to wait before retrying", schema: { type: "integer" as const, minimum: 1, example: 5 } },
  },
  content: {
    "application/json": {
      schema: errorSchema(["too_many_clients_from_address"]),
      examples: {
        too_many_clients_from_address: {
          summary: "Too many streams from this address",
          value: errorBody("too_many_clients_from_address", TOO_MANY_FROM_ADDRESS_MESSAGE),
        },
      },
    },
  },
};

export const liveEventsRoute = createRoute(
  withErrors(
    {
      method: "get",
      path: "/live/events",
      tags: ["live"],
      summary: "Order changes as server-sent events",
      description:
        "A `text/event-stream` that stays open. On connecting: `retry: 3000`, then one `snapshot` event " +
        "(`data`: LiveSnapshot, the newest orders and the trace viewer's `trace_url`). Then an `order` event " +
        "(`data`: LiveOrder, the whole order, with its `trace_id`) whenever an order " +
        "is placed or its status, compensation or timeline changes, in any registry process sharing the database: one poller per " +
        "process reads the timeline entries committed since its cursor every 250 ms while a client is connected. Each event's " +
        "`id:` is the version it carries. A comment line (`: heartbeat`) comes every 5 s. A client that reconnects gets a fresh " +
        "snapshot. In a burst, only the newest 100 changed orders per poll are sent.\n\n" +
        "A client must read what it is sent. One with more than `live_max_unsent_bytes` (1 MiB) not yet taken by its socket " +
        "when a poll starts, or that took nothing for `live_stall_timeout_ms` (15 s) (its data waited without the socket taking all " +
        "of it, or, on Linux, the kernel saw its receive window closed), is " +
        "dropped: its stream ends and what was queued for it is discarded. Each process takes `live_max_clients` (200) clients, " +
        "`live_max_clients_per_address` (20) of them from one IP address (one /64 for IPv6; the address is the TCP peer's, " +
        "`X-Forwarded-For` is not read). When a limit is reached, a client that took nothing for at least 1 s, whatever its address, is shed to make " +
        "room; only when none is stuck is the newcomer refused, with 429 `too_many_clients_from_address` or 503 " +
        "`too_many_clients` and `Retry-After`.",
      responses: {
        200: {
          description: "The event stream",
          content: {
            "text/event-stream": {
              schema: z.string().describe("Server-sent events: `snapshot`, then `order` events and heartbeat comments"),
              example: `retry: 3000\n\nid: 42\nevent: snapshot\ndata: {"orders":[${JSON.stringify(EXAMPLE_ORDER)}],"trace_url":"http://localhost:16686/trace/{trace_id}"}\n\n: heartbeat 2026-03-14T09:26:58.589Z\n\n`,
            },
          },
        },
        429: tooManyFromAddress,
      },
    },
    {
      503: {
        too_many_clients: {
          when: "`live_max_clients` (200) clients are connected to this process already and none of them is stuck; retry after `Retry-After` seconds",
          message: "too many live clients; retry shortly",
        },
      },
    },
  ),
);

const Overview = z
  .object({
    wallets: z
      .array(
        z
          .object({ user_id: z.int().describe("The wallet's user"), balance_cents: z.int().describe("Balance in cents") })
          .describe("One wallet"),
      )
      .describe("Balances by user id, the first 200"),
    wallets_total: z.int().describe("Wallets in all"),
    stock: z
      .array(
        z
          .object({
            product_id: z.int().describe("Product id"),
            available: z.int().describe("Units free to reserve"),
            reserved: z.int().describe("Units held by orders"),
          })
          .describe("One product's stock"),
      )
      .describe("Stock by product id, the first 200"),
    stock_total: z.int().describe("Products with a stock row in all"),
    unavailable: z
      .array(
        z
          .object({
            service: z.enum(["wallet", "storage"]).describe("The service that did not answer"),
            message: z.string().describe("Why, without internals"),
          })
          .describe("A service that could not be asked"),
      )
      .describe("Services that did not answer (their list is then empty)"),
    fetched_at: Timestamp.describe("When registry asked them"),
  })
  .describe("Balances and stock as wallet and storage report them")
  .openapi("LiveOverview");

export const liveOverviewRoute = createRoute(
  withErrors(
    {
      method: "get",
      path: "/live/overview",
      tags: ["live"],
      summary: "Balances and stock, as wallet and storage report them",
      description:
        "Registry asks wallet (`GET /wallets`) and storage (`GET /stock`) over HTTP, in one process as in the split deployment " +
        "(`wallet_url`, `storage_url`), so the page talks to registry only. Answers are shared for 0.5 s; a service that does " +
        "not answer within 3 s is named in `unavailable`.",
      responses: {
        200: json(Overview, "Balances and stock", {
          wallets: [{ user_id: 1, balance_cents: 98000 }],
          wallets_total: 1,
          stock: [{ product_id: 2, available: 8, reserved: 2 }],
          stock_total: 1,
          unavailable: [],
          fetched_at: "2026-03-14T09:26:54.012Z",
        }),
      },
    },
    {},
    { database: false },
  ),
);
