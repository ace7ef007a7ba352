/**
 * `bun run build`: one executable, dist/shop (or `--outfile <path>`), that runs any subset of the
 * modules like `bun run src/app/main.ts`. It carries its migrations, default config, PGlite's wasm and
 * data bundle and Swagger UI's assets (src/assets.ts lists them) under their project-relative paths.
 */
import { existsSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
import { parseArgs } from "node:util";
import { EMBEDDED } from "../src/assets";

const root = join(import.meta.dir, "..");
const { values } = parseArgs({ args: Bun.argv.slice(2), options: { outfile: { type: "string" } } });
const outfile = values.outfile ?? join(root, "dist", "shop");
const missing = EMBEDDED.filter((p) => !existsSync(join(root, p)));
// A single file is embedded by its name alone (src/assets.ts): two of one name would collide.
const names = EMBEDDED.map((p) => basename(p));
if (new Set(names).size !== names.length) throw new Error(`two embedded files share a name: ${names.join(", ")}`);
if (missing.length > 0) {
  console.error(`cannot build: missing ${missing.join(", ")} (run bun install?)`);
  process.exit(1);
}
const started = Date.now();
// Asset paths are relative to the working directory: build from the project root.
process.chdir(root);
const result = await Bun.build({
  entrypoints: ["src/app/main.ts"],
  sourcemap: "inline",
  compile: {
    outfile,
    assets: [...EMBEDDED],
    // The binary reads .env from where it runs, like `bun run`; a bunfig.toml there is not its business.
    autoloadDotenv: true,
    autoloadBunfig: false,
  },
});
if (!result.success) {
  for (const log of result.logs) console.error(log);
  process.exit(1);
}
// The executable carries its source map (stack traces name src/ lines); the file beside it is not needed.
rmSync(`${outfile}.map`, { force: true });
const size = Bun.file(outfile).size;
console.log(`built ${outfile} (${(size / 1024 / 1024).toFixed(0)} MB) in ${Date.now() - started} ms`);
