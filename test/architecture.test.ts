/**
 * The layers, checked by the tools CI runs (`bun run lint:deps`, `bun run lint:unused`): the tree
 * passes dependency-cruiser's rules (.dependency-cruiser.cjs), a small tree that breaks each rule
 * is caught, knip finds an unused export; plus what no import graph shows (one door per module,
 * every module mounted, no module pointing at another's migrations, no computed imports).
 */
import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");
const DEPCRUISE = join(ROOT, "node_modules", "dependency-cruiser", "bin", "dependency-cruise.mjs");
const KNIP = join(ROOT, "node_modules", "knip", "bin", "knip.js");
const CONFIG = join(ROOT, ".dependency-cruiser.cjs");
const MODULE_NAMES = readdirSync(join(ROOT, "modules")).filter((d) => statSync(join(ROOT, "modules", d)).isDirectory());

/** One broken rule as dependency-cruiser's JSON reports it. */
interface Violation {
  from: string;
  to: string;
  rule: { name: string; severity: string };
  cycle?: { name: string }[];
}

/** One file of the cruised tree, with what it imports. */
interface CruisedModule {
  source: string;
  dependencies: { module: string; resolved: string }[];
}

/** Runs a tool's CLI (under this Bun) in `cwd`; its exit code and what it printed. */
function run(cwd: string, args: string[]) {
  const proc = Bun.spawnSync([process.execPath, ...args], { cwd, stdout: "pipe", stderr: "pipe" });
  return { exitCode: proc.exitCode, stdout: proc.stdout.toString(), stderr: proc.stderr.toString() };
}

/** dependency-cruiser over `dirs` of `cwd` with the project's rules, as `bun run lint:deps` runs it. */
function cruise(cwd: string, dirs: string[]) {
  const { exitCode, stdout, stderr } = run(cwd, [DEPCRUISE, ...dirs, "--config", CONFIG, "--output-type", "json"]);
  if (!stdout.startsWith("{")) throw new Error(`dependency-cruiser printed no report (exit ${exitCode}): ${stderr}`);
  const report = JSON.parse(stdout) as { modules: CruisedModule[]; summary: { violations: Violation[] } };
  return { exitCode, modules: report.modules, violations: report.summary.violations };
}

/** A violation in one line: rule, from, to (a cycle: its files in order). */
const describeViolation = (v: Violation) => `${v.rule.name}: ${v.from} -> ${v.cycle ? v.cycle.map((c) => c.name).join(" -> ") : v.to}`;

/** Writes `files` (path relative to `dir` -> text) under `dir`. */
function writeTree(dir: string, files: Record<string, string>) {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
}

/** A fresh directory for a fixture tree, removed after `body`. */
function withTempDir<T>(body: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "shop-architecture-"));
  try {
    return body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Every .ts file under `dir` (relative to the project root). */
function tsFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts"))
    .map((f) => `${dir}/${f.split("\\").join("/")}`)
    .sort();
}

const read = (file: string) => readFileSync(join(ROOT, file), "utf8");

describe("dependency-cruiser", () => {
  test("the tree keeps every layer rule, has no cycle, and declares every package it imports", () => {
    const { exitCode, modules, violations } = cruise(ROOT, ["src", "modules", "sim", "scripts", "bench", "test"]);
    expect(violations.map(describeViolation)).toEqual([]);
    expect(exitCode).toBe(0);

    // It saw every import Bun's own parser sees (the rules are only as good as the graph).
    const bare = (specifier: string) => specifier.replace(/^node:/, ""); // it records node:path as path
    const seen = new Map(modules.map((m) => [m.source, new Set(m.dependencies.map((d) => bare(d.module)))]));
    const transpiler = new Bun.Transpiler({ loader: "ts" });
    for (const file of [...tsFiles("src"), ...tsFiles("modules")]) {
      for (const { path } of transpiler.scanImports(read(file))) {
        expect(seen.get(file)?.has(bare(path)), `${file} imports ${path}`).toBe(true);
      }
    }
  }, 60_000);

  test("a tree that breaks each rule is reported, rule by rule, and nothing else is", () => {
    // Each file breaks at most the rules its comment names; the allowed arrows are there too.
    const tree: Record<string, string> = {
      "package.json": JSON.stringify({ name: "fixture", dependencies: {}, devDependencies: { "dev-only": "1.0.0" } }),
      "tsconfig.json": JSON.stringify({ compilerOptions: { allowImportingTsExtensions: true, noEmit: true } }),
      "node_modules/undeclared/package.json": JSON.stringify({ name: "undeclared", version: "1.0.0", main: "index.js" }),
      "node_modules/undeclared/index.js": "module.exports = 1;\n",
      "node_modules/dev-only/package.json": JSON.stringify({ name: "dev-only", version: "1.0.0", main: "index.js" }),
      "node_modules/dev-only/index.js": "module.exports = 1;\n",
      // contracts importing the bus
      "src/contracts/order.ts": `import { sign } from "../bus/signing";\nexport const order = sign;\n`,
      "src/bus/signing.ts": `export const sign = 1;\n`,
      // plumbing importing saga (carrying a contract is fine)
      "src/bus/bus.ts": `import type { order } from "../contracts/order";\nimport { rule } from "../saga/rules";\nexport const send = (o: typeof order) => rule(o);\n`,
      // saga importing the wiring
      "src/saga/rules.ts": `import { shop } from "../app/shop";\nexport const rule = (x: unknown) => [x, shop];\n`,
      // wiring other than src/app/modules.ts importing a module
      "src/app/shop.ts": `import { wallet } from "../../modules/wallet/index";\nexport const shop = wallet;\n`,
      // src/app/modules.ts past a module's door (through the door is fine)
      "src/app/modules.ts": `import { debit } from "../../modules/wallet/service";\nimport { storage } from "../../modules/storage/index";\nexport const MODULES = [debit, storage];\n`,
      "src/app/main.ts": `export const main = 1;\n`,
      // plumbing importing the wiring, and a module past the wiring
      "src/db/pool.ts": `import { main } from "../app/main";\nimport { wallet } from "../../modules/wallet/index";\nexport const pool = [main, wallet];\n`,
      // plumbing reaching up a floor: the database into messaging, the log into tracing
      "src/db/retention.ts": `import { inbox } from "../messaging/tables";\nexport const jobs = [inbox];\n`,
      "src/messaging/tables.ts": `export const inbox = 1;\n`,
      "src/log.ts": `import { activeTraceIds } from "./tracing/spans";\nexport const log = activeTraceIds;\n`,
      "src/tracing/spans.ts": `export const activeTraceIds = 1;\n`,
      // a cycle inside plumbing
      "src/db/a.ts": `import { b } from "./b";\nexport const a = () => b;\n`,
      "src/db/b.ts": `import { a } from "./a";\nexport const b = () => a;\n`,
      // an import that resolves to nothing; an installed package not in package.json; a devDependency in production code
      "src/http/app.ts": `import "./missing";\nimport undeclared from "undeclared";\nimport devOnly from "dev-only";\nexport const app = [undeclared, devOnly];\n`,
      "modules/wallet/index.ts": `export const wallet = 1;\n`,
      // a module past Idempotency-Key's door (through the door, src/idempotency/index.ts, is fine)
      "modules/wallet/routes.ts": `import { replay } from "../../src/idempotency/http";\nimport { IDEMPOTENCY_HEADER } from "../../src/idempotency";\nexport const routes = [replay, IDEMPOTENCY_HEADER];\n`,
      // the idempotency floor stands on db and http (fine); http reaching up into it is not
      "src/idempotency/store.ts": `import { a } from "../db/a";\nexport const claim = a;\n`,
      "src/idempotency/http.ts": `import { app } from "../http/app";\nimport { claim } from "./store";\nexport const replay = [app, claim];\n`,
      "src/idempotency/index.ts": `export { replay } from "./http";\nexport const IDEMPOTENCY_HEADER = "Idempotency-Key";\n`,
      "src/http/guards.ts": `import { claim } from "../idempotency/store";\nexport const guard = claim;\n`,
      // production code importing test support (also outside src/ and itself)
      "modules/wallet/service.ts": `import { db } from "../../test/support/db";\nexport const debit = db;\n`,
      // a module's test may use test/support, not bench/
      "modules/wallet/wallet.test.ts": `import { db } from "../../test/support/db";\nimport { load } from "../../bench/load";\nexport const t = [db, load];\n`,
      // a module importing the wiring
      "modules/storage/index.ts": `import { main } from "../../src/app/main";\nexport const storage = main;\n`,
      // a module importing another module
      "modules/storage/service.ts": `import { debit } from "../wallet/service";\nexport const reserve = debit;\n`,
      "test/support/db.ts": `export const db = 1;\n`,
      "bench/load.ts": `export const load = 1;\n`,
    };
    const dirs = ["src", "modules", "test", "bench"];
    const [found, lint] = withTempDir((dir) => {
      writeTree(dir, tree);
      // The JSON report to read, and the plain run `bun run lint:deps` does, for its exit code.
      return [cruise(dir, dirs), run(dir, [DEPCRUISE, ...dirs, "--config", CONFIG])] as const;
    });
    expect(found.violations.map(describeViolation).sort()).toEqual(
      [
        "contracts-are-plain-schemas: src/contracts/order.ts -> src/bus/signing.ts",
        "plumbing-knows-no-business: src/bus/bus.ts -> src/saga/rules.ts",
        "src-below-the-wiring: src/saga/rules.ts -> src/app/shop.ts",
        "src-below-the-wiring: src/db/pool.ts -> src/app/main.ts",
        "src-below-the-wiring: src/db/pool.ts -> modules/wallet/index.ts",
        "modules-mounted-in-one-place: src/app/shop.ts -> modules/wallet/index.ts",
        "one-door-per-module: src/app/modules.ts -> modules/wallet/service.ts",
        "no-circular: src/db/a.ts -> src/db/b.ts -> src/db/a.ts",
        "plumbing-floor-db: src/db/retention.ts -> src/messaging/tables.ts",
        "plumbing-floor-ground: src/log.ts -> src/tracing/spans.ts",
        "not-to-unresolvable: src/http/app.ts -> ./missing",
        "packages-declared: src/http/app.ts -> node_modules/undeclared/index.js",
        "production-not-to-dev-dependencies: src/http/app.ts -> node_modules/dev-only/index.js",
        "production-not-to-dev-trees: modules/wallet/service.ts -> test/support/db.ts",
        "modules-reach-only-src-and-themselves: modules/wallet/service.ts -> test/support/db.ts",
        "module-tests-only-to-test-support: modules/wallet/wallet.test.ts -> bench/load.ts",
        "modules-not-to-wiring: modules/storage/index.ts -> src/app/main.ts",
        "modules-are-isolated: modules/storage/service.ts -> modules/wallet/service.ts",
        "modules-idempotency-through-its-door: modules/wallet/routes.ts -> src/idempotency/http.ts",
        "plumbing-floor-http: src/http/guards.ts -> src/idempotency/store.ts",
      ].sort(),
    );
    // As `bun run lint:deps` (and so CI) sees it: a failure.
    expect(lint.stdout).toContain("error modules-are-isolated: modules/storage/service.ts");
    expect(lint.exitCode).not.toBe(0);
  }, 60_000);
});

describe("knip", () => {
  test("reports an export nobody imports, and exits non-zero", () => {
    const result = withTempDir((dir) => {
      writeTree(dir, {
        "package.json": JSON.stringify({ name: "fixture", type: "module", dependencies: {} }),
        "knip.json": JSON.stringify({ entry: ["main.ts"], project: ["**/*.ts"] }),
        "tsconfig.json": JSON.stringify({ compilerOptions: { module: "ESNext", moduleResolution: "bundler", noEmit: true } }),
        "main.ts": `import { used } from "./lib";\nconsole.log(used());\n`,
        "lib.ts": `export const used = () => 1;\nexport const forgotten = () => 2;\n`,
        "orphan.ts": `export const nobody = 3;\n`,
      });
      return run(dir, [KNIP, "--no-progress", "--no-config-hints"]);
    });
    expect(result.stdout).toContain("forgotten");
    expect(result.stdout).toMatch(/lib\.ts:2/);
    expect(result.stdout).toContain("orphan.ts");
    expect(result.stdout).not.toMatch(/^used\b/m);
    expect(result.exitCode).not.toBe(0);
  }, 60_000);
});

describe("what the import graph does not show", () => {
  test("every module has one door, index.ts, implementing src/module.ts, and src/app/modules.ts mounts each", () => {
    expect([...MODULE_NAMES].sort()).toEqual(["registry", "storage", "wallet"]);
    const imports = (file: string) => new Bun.Transpiler({ loader: "ts" }).scanImports(read(file)).map((i) => i.path);
    for (const name of MODULE_NAMES) {
      // scanImports leaves out type-only imports: read the text for the interface.
      expect(read(`modules/${name}/index.ts`)).toContain(`from "../../src/module"`);
    }
    const doors = imports("src/app/modules.ts").filter((p) => p.startsWith("../../modules/"));
    expect(doors.map((p) => p.replace(/(\/index(\.ts)?)?$/, "")).sort()).toEqual(MODULE_NAMES.map((n) => `../../modules/${n}`).sort());
  });

  test("no module points at another module's migrations, or imports by a computed name", () => {
    const found: string[] = [];
    for (const file of tsFiles("modules")) {
      const own = file.split("/")[1];
      const code = read(file);
      for (const m of code.matchAll(/["'`][^"'`\n]*\bdrizzle\/([\w-]+)/g)) {
        if (m[1] !== own && MODULE_NAMES.includes(m[1] as string)) found.push(`${file}: refers to drizzle/${m[1]}`);
      }
      // import(x) / require(x) with something other than a string literal: no tool can follow it.
      for (const m of code.matchAll(/\b(?:import|require)\s*\(\s*(?!["'`])[^)\s]/g)) found.push(`${file}: computed ${m[0]}`);
    }
    expect(found).toEqual([]);
  });
});
