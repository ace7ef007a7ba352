/** Routers for module routes, sharing the validation hook. */
import { OpenAPIHono } from "@hono/zod-openapi";
import { validationHook } from "./errors";

/** A router for a module's routes, with the shared validation hook. */
export const createRouter = () => new OpenAPIHono({ defaultHook: validationHook });

/** A module's router type. */
export type Router = ReturnType<typeof createRouter>;
