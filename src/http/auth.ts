/** Admin writes (deposits, receipts, everything under /admin/) need `Authorization: Bearer <ADMIN_TOKEN>`. */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import type { Settings } from "../config";
import type { Logger } from "../log";
import { errorBody, errorContent, SHELL_ERRORS } from "./errors";

/** The security scheme's name in the OpenAPI documents. */
const ADMIN_SCHEME = "adminToken";

/** A route's `security` for admin routes; the app shell enforces it on every route that declares it. */
export const adminSecurity: Record<string, string[]>[] = [{ [ADMIN_SCHEME]: [] }];

/** Whether a route's `security` asks for the admin token. */
export const needsAdmin = (security: readonly Record<string, unknown>[] | undefined): boolean =>
  security?.some((s) => ADMIN_SCHEME in s) ?? false;

/** Paths under this prefix are admin routes whoever declares them. */
export const ADMIN_PREFIX = "/admin/";

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();

/** The presented bearer token, or null when the header is missing or not a bearer credential. */
export function bearer(header: string | undefined): string | null {
  const m = /^Bearer +([^\s]+) *$/i.exec(header ?? "");
  return m?.[1] ?? null;
}

/**
 * Middleware: a request without `Authorization: Bearer <token>` or with another token gets a
 * 401 JSON error and goes no further (nothing is read or changed). The comparison is over
 * SHA-256 digests in constant time, so neither the content nor the length of the token leaks.
 */
export function requireAdmin(token: string): MiddlewareHandler {
  const expected = digest(token);
  return async (c, next) => {
    const presented = bearer(c.req.header("authorization"));
    if (presented === null || !timingSafeEqual(digest(presented), expected)) {
      c.header("WWW-Authenticate", 'Bearer realm="shop admin"');
      const message = presented === null ? "send Authorization: Bearer <admin token>" : "the admin token is wrong";
      return c.json(errorBody("unauthorized", message), 401);
    }
    await next();
  };
}

const generated = new WeakMap<Settings, string>();

/**
 * ADMIN_TOKEN, or when it is unset one random token per settings object (one started shop, all
 * its modules), logged once at info so that `bun run dev` stays usable.
 */
export function adminToken(settings: Settings, log: Logger): string {
  if (settings.ADMIN_TOKEN) return settings.ADMIN_TOKEN;
  let token = generated.get(settings);
  if (token === undefined) {
    token = randomBytes(24).toString("base64url");
    generated.set(settings, token);
    log.info("admin token (generated; set ADMIN_TOKEN to choose one)", { token });
  }
  return token;
}

/** An OpenAPI document as far as the admin additions need it. */
interface Doc {
  paths?: Record<string, Record<string, unknown> | undefined>;
  components?: { securitySchemes?: Record<string, unknown>; schemas?: Record<string, unknown> } & Record<string, unknown>;
}

const METHODS = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];

/**
 * Adds the bearer scheme to an OpenAPI document, and to every operation under /admin/ (or
 * declaring the scheme) its security requirement and a 401 response.
 */
export function documentAdmin<D extends object>(document: D): D {
  const doc = document as Doc;
  const unauthorized = errorContent(401, { unauthorized: SHELL_ERRORS.unauthorized });
  const paths: NonNullable<Doc["paths"]> = {};
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    if (!item) continue;
    const out: Record<string, unknown> = { ...item };
    for (const method of METHODS) {
      const op = item[method] as { security?: Record<string, string[]>[]; responses?: Record<string, unknown> } | undefined;
      if (!op || !(path === "/admin" || path.startsWith(ADMIN_PREFIX) || needsAdmin(op.security))) continue;
      out[method] = {
        ...op,
        security: needsAdmin(op.security) ? op.security : [...(op.security ?? []), ...adminSecurity],
        responses: { ...op.responses, 401: op.responses?.[401] ?? unauthorized },
      };
    }
    paths[path] = out;
  }
  const components = doc.components ?? {};
  return {
    ...document,
    paths,
    components: {
      ...components,
      securitySchemes: {
        ...components.securitySchemes,
        [ADMIN_SCHEME]: {
          type: "http",
          scheme: "bearer",
          description: "The ADMIN_TOKEN setting (deposits, receipts and every route under /admin/).",
        },
      },
    },
  };
}
