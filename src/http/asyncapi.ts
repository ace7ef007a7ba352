/** GET /asyncapi.json: the AsyncAPI 3.0 document of the bus messages, the same on every service. */
import { createRoute, z } from "@hono/zod-openapi";
import { type AsyncApiOptions, asyncApiDocument } from "../contracts/asyncapi";
import { createRouter } from "./router";

/** The document's outline, for the OpenAPI description; the whole document is served as built. */
const AsyncApiDocumentSchema = z
  .looseObject({
    asyncapi: z.literal("3.0.0"),
    info: z.looseObject({ title: z.string(), version: z.string() }),
    channels: z.record(z.string(), z.unknown()).openapi({ description: "One per topic; `address` is the configured topic name" }),
    operations: z.record(z.string(), z.unknown()).openapi({ description: "Which module sends and which receives each message" }),
    components: z.looseObject({ messages: z.record(z.string(), z.unknown()) }),
  })
  .openapi("AsyncApiDocument");

const route = createRoute({
  method: "get",
  path: "/asyncapi.json",
  tags: ["messages"],
  summary: "The bus messages as an AsyncAPI 3.0 document",
  description:
    "Every message type on the three topics (envelope and payload schemas generated from the zod contracts, record key and headers, examples), and which module sends and which receives it. Every service serves the same document, under its configured topic names and brokers.",
  responses: { 200: { description: "AsyncAPI 3.0.0 document", content: { "application/json": { schema: AsyncApiDocumentSchema } } } },
});

/** The /asyncapi.json route; the document is built once, from the service's configuration. */
export function asyncApiRoutes(opts: AsyncApiOptions) {
  const document = AsyncApiDocumentSchema.parse(asyncApiDocument(opts));
  return createRouter().openapi(route, (c) => c.json(document, 200));
}
