/** Which documented route answered a request, as an OpenAPI pattern: for log lines and metric labels. */
import type { Context } from "hono";
import { matchedRoutes } from "hono/route";

/** Hono route paths (`/orders/:id`) as OpenAPI patterns (`/orders/{id}`); as many as there are routes. */
const patterns = new Map<string, string>();

/** The pattern of each request's route, worked out once per request (the log and the metrics both ask). */
const seen = new WeakMap<Context, string | null>();

/** The OpenAPI-style pattern of the route that answered (`/orders/{id}`); null when none matched (404, 405). */
export function routePattern(c: Context): string | null {
  const known = seen.get(c);
  if (known !== undefined) return known;
  // `app.use` middleware is registered for every method ("ALL"); a route names its method.
  const matched = matchedRoutes(c).findLast((r) => r.method !== "ALL");
  let pattern: string | null = null;
  if (matched) {
    pattern = patterns.get(matched.path) ?? null;
    if (pattern === null) {
      pattern = matched.path.replaceAll(/:(\w+)(\{[^}]*\})?/g, "{$1}");
      patterns.set(matched.path, pattern);
    }
  }
  seen.set(c, pattern);
  return pattern;
}
