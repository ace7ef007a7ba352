/** Swagger UI at /swagger/, with its assets served from this process (no CDN needed; embedded in the binary). */
import { swaggerUI } from "@hono/swagger-ui";
import type { OpenAPIHono } from "@hono/zod-openapi";
import { assetPath, SWAGGER_UI_DIR } from "../assets";

const ASSETS = "/swagger/assets";
const FILES: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
};

/** Mounts Swagger UI for the document at `docUrl`. */
export function mountSwagger(app: OpenAPIHono, docUrl: string, title: string): void {
  app.get(`${ASSETS}/swagger-ui-dist/:file`, (c) => {
    const file = c.req.param("file");
    const type = FILES[file];
    if (!type) return c.json({ error: { code: "not_found", message: `no asset ${file}` } }, 404);
    return new Response(Bun.file(assetPath(`${SWAGGER_UI_DIR}/${file}`)), {
      headers: { "content-type": type, "cache-control": "public, max-age=86400" },
    });
  });
  app.get("/swagger", swaggerUI({ url: docUrl, baseUrl: ASSETS, title }));
}
