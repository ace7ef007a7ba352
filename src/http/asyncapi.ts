/** GET /asyncapi.json: the AsyncAPI 3.0 document of the bus messages, the same on every service. */
import { createRoute, z } from "@hono/zod-openapi";
import { type AsyncApiOptions, asyncApiDocument } from "./asyncapi-document";
import { createRouter } from "./router";

/** The document's outline, for the OpenAPI description; the whole document is served as built. */
const AsyncApiDocumentSchema = z
  .looseObject({
    asyncapi: z.literal("3.0.0").openapi({ description: "The AsyncAPI version of the document" }),
    info: z
      .looseObject({
        title: z.string().openapi({ description: "The document's title" }),
        version: z.string().openapi({ description: "The version of the messages' contracts" }),
      })
      .openapi({ description: "Title, version and description" }),
    channels: z.record(z.string(), z.unknown()).openapi({ description: "One per topic; `address` is the configured topic name" }),
    operations: z.record(z.string(), z.unknown()).openapi({ description: "Which module sends and which receives each message" }),
    components: z
      .looseObject({
        messages: z
          .record(z.string(), z.unknown())
          .openapi({ description: "Each message type: envelope and payload schema, key, headers, examples" }),
      })
      .openapi({ description: "Messages and schemas the channels and operations refer to" }),
  })
  .openapi("AsyncApiDocument");

/** An outline of the document (the real one lists every message, its schemas and examples). */
const EXAMPLE = {
  asyncapi: "3.0.0",
  info: { title: "Shop messages", version: "1.0.0" },
  channels: { new_orders: { address: "new_orders", description: "Orders registry has just created" } },
  operations: { registrySendsOrderCreated: { action: "send", summary: "registry sends OrderCreated on new_orders" } },
  components: { messages: { OrderCreated: { name: "OrderCreated", contentType: "application/json" } } },
};

const route = createRoute({
  method: "get",
  path: "/asyncapi.json",
  tags: ["messages"],
  summary: "The bus messages as an AsyncAPI 3.0 document",
  description:
    "Every message type on the three topics (envelope and payload schemas generated from the zod contracts, record key and headers, examples), and which module sends and which receives it. Every service serves the same document, under its configured topic names and brokers.",
  responses: {
    200: { description: "AsyncAPI 3.0.0 document", content: { "application/json": { schema: AsyncApiDocumentSchema, example: EXAMPLE } } },
  },
});

/** The /asyncapi.json route; the document is built once, from the service's configuration. */
export function asyncApiRoutes(opts: AsyncApiOptions) {
  const document = AsyncApiDocumentSchema.parse(asyncApiDocument(opts));
  return createRouter().openapi(route, (c) => c.json(document, 200));
}
