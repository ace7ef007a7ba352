/**
 * Files the process reads at run time besides its code: migrations, default module config, PGlite's
 * wasm and data bundle, Swagger UI's assets. From the source tree they are read where they are; a
 * binary made by `bun run build` (scripts/build.ts) carries them inside (see assetPath).
 */
import { basename, join } from "node:path";

/** True in a single executable made by `bun build --compile`. */
export const IN_BINARY = Bun.isStandaloneExecutable;

/** The embedded PGlite files, relative to the project root. */
export const PGLITE_ASSETS = {
  wasm: "node_modules/@electric-sql/pglite/dist/pglite.wasm",
  initdb: "node_modules/@electric-sql/pglite/dist/initdb.wasm",
  data: "node_modules/@electric-sql/pglite/dist/pglite.data",
} as const;

/** The Swagger UI files served at /swagger/assets, relative to the project root. */
export const SWAGGER_UI_DIR = "node_modules/swagger-ui-dist";
const SWAGGER_UI_FILES = ["swagger-ui.css", "swagger-ui-bundle.js"] as const;

/** Single files scripts/build.ts embeds, relative to the project root (in the binary by name: names must differ). */
const EMBEDDED_FILES: readonly string[] = [...Object.values(PGLITE_ASSETS), ...SWAGGER_UI_FILES.map((f) => `${SWAGGER_UI_DIR}/${f}`)];

/** Everything scripts/build.ts embeds, relative to the project root: folders (all their files), then single files. */
export const EMBEDDED: readonly string[] = ["drizzle", "config", ...EMBEDDED_FILES];

/**
 * Where a project file or folder (`relative` to the project root) is read from: the source tree, or
 * inside the binary (`/$bunfs/root`, every bundled module's import.meta.dir), where an embedded
 * folder keeps its relative path and an embedded single file is found by its name alone.
 */
export function assetPath(relative: string): string {
  if (!IN_BINARY) return join(import.meta.dir, "..", relative);
  return join(import.meta.dir, EMBEDDED_FILES.includes(relative) ? basename(relative) : relative);
}

/** A module's migrations folder: `fromSource` (the module's own) or, in the binary, its embedded copy. */
export function migrationsFolder(module: string, fromSource: string): string {
  return IN_BINARY ? assetPath(join("drizzle", module)) : fromSource;
}
