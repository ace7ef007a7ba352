/** Module boundaries: modules/<a> imports only itself, src/ (not the wiring) and declared packages; src/ reaches modules only through src/modules.ts -> index.ts. */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";

const ROOT = resolve(import.meta.dir, "..");
const MODULE_NAMES = readdirSync(join(ROOT, "modules")).filter((d) => statSync(join(ROOT, "modules", d)).isDirectory());
const PACKAGE = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
};
const RUNTIME_PACKAGES = new Set(Object.keys(PACKAGE.dependencies ?? {}));
const DEV_PACKAGES = new Set(Object.keys(PACKAGE.devDependencies ?? {}));
const BUILTINS = new Set(builtinModules);

/** A forbidden dependency: which file, which specifier, and why. */
interface Violation {
  file: string;
  specifier: string;
  reason: string;
}

/** Every .ts file under `dir` (relative to the project root, with forward slashes). */
function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory() && entry.name !== "node_modules") out.push(...tsFiles(rel));
    else if (entry.isFile() && /\.(c|m)?tsx?$/.test(entry.name)) out.push(rel);
  }
  return out.sort();
}

/** `source` with comments blanked out, strings and code kept (so a commented-out import is no dependency). */
function stripComments(source: string): string {
  let out = "";
  let i = 0;
  while (i < source.length) {
    const c = source[i] as string;
    const next = source[i + 1];
    if (c === "/" && next === "/") {
      while (i < source.length && source[i] !== "\n") i++;
    } else if (c === "/" && next === "*") {
      const end = source.indexOf("*/", i + 2);
      const stop = end === -1 ? source.length : end + 2;
      out += source.slice(i, stop).replace(/[^\n]/g, " ");
      i = stop;
    } else if (c === '"' || c === "'" || c === "`") {
      let j = i + 1;
      while (j < source.length && source[j] !== c) j += source[j] === "\\" ? 2 : 1;
      out += source.slice(i, j + 1);
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

const SPECIFIER_PATTERNS = [
  // import x from "a"; import type { X } from "a"; export * from "a"; export { x } from "a" (any line breaks)
  /\b(?:import|export)\s+(?:type\s+)?[\w$*{}\s,]*?\bfrom\s*(["'])([^"'\n]+)\1/g,
  // import "a";
  /\bimport\s*(["'])([^"'\n]+)\1/g,
  // import("a"), typeof import("a")
  /\bimport\s*\(\s*(["'`])([^"'`\n]+)\1\s*\)/g,
  // require("a"), import x = require("a")
  /\brequire\s*\(\s*(["'`])([^"'`\n]+)\1\s*\)/g,
];

/** Every module specifier `source` imports or re-exports, statically or dynamically. */
function importSpecifiers(source: string): string[] {
  const code = stripComments(source);
  const found = new Set<string>();
  for (const pattern of SPECIFIER_PATTERNS) {
    for (const m of code.matchAll(pattern)) found.add(m[2] as string);
  }
  return [...found];
}

/** `import(x)` / `require(x)` with something other than a string literal cannot be checked. */
const hasOpaqueImport = (source: string) => /\b(?:import|require)\s*\(\s*(?!["'`])/.test(stripComments(source));

/** The file a relative specifier names, or the bare resolved path if no file matches. */
function resolveRelative(fromFile: string, specifier: string): string {
  const base = resolve(ROOT, dirname(fromFile), specifier);
  const candidates = [base, `${base}.ts`, `${base}.tsx`, base.replace(/\.js$/, ".ts"), join(base, "index.ts")];
  const hit = candidates.find((c) => existsSync(c) && statSync(c).isFile()) ?? base;
  return relative(ROOT, hit).split(sep).join("/");
}

const isRelative = (s: string) => s.startsWith("./") || s.startsWith("../") || s === "." || s === "..";
const packageName = (s: string) => (s.startsWith("@") ? s.split("/").slice(0, 2).join("/") : (s.split("/")[0] as string));
const isRuntimeBuiltin = (s: string) => s === "bun" || s.startsWith("bun:") || s.startsWith("node:") || BUILTINS.has(s);
const isTestFile = (file: string) => /\.test\.tsx?$/.test(file);

/** The module folder a path lies in, if any. */
const moduleOf = (path: string) => /^modules\/([^/]+)\//.exec(path)?.[1];

/** src/ files that import modules/, directly or through other src/ files (the process wiring). */
function wiringFiles(): Set<string> {
  const edges = new Map<string, string[]>();
  for (const file of tsFiles("src")) {
    const specs = importSpecifiers(readFileSync(join(ROOT, file), "utf8")).filter(isRelative);
    edges.set(
      file,
      specs.map((s) => resolveRelative(file, s)),
    );
  }
  const wiring = new Set<string>();
  for (let grew = true; grew; ) {
    grew = false;
    for (const [file, targets] of edges) {
      if (wiring.has(file)) continue;
      if (targets.some((t) => t.startsWith("modules/") || wiring.has(t))) {
        wiring.add(file);
        grew = true;
      }
    }
  }
  return wiring;
}

const WIRING = wiringFiles();

/** What is wrong with the dependencies of `file` (a path under modules/<a>/) whose text is `source`. */
function moduleViolations(file: string, source: string): Violation[] {
  const own = moduleOf(file);
  if (!own) throw new Error(`${file} is not inside a module folder`);
  const out: Violation[] = [];
  const flag = (specifier: string, reason: string) => out.push({ file, specifier, reason });
  for (const spec of importSpecifiers(source)) {
    if (isRelative(spec)) {
      const target = resolveRelative(file, spec);
      const other = moduleOf(target);
      if (other === own) continue;
      if (other !== undefined) flag(spec, `imports module "${other}" (${target}); modules meet only in src/contracts`);
      // A module's own tests may use the shared test support (an in-memory database, a capturing outbox).
      else if (!target.startsWith("src/") && !(isTestFile(file) && target.startsWith("test/support/"))) {
        flag(spec, `imports ${target}, outside src/ and modules/${own}/`);
      }
      else if (WIRING.has(target)) flag(spec, `imports the process wiring ${target}, which reaches every module`);
    } else if (spec.startsWith("/") || /^[a-z]+:\/\//i.test(spec)) {
      flag(spec, "imports an absolute path or URL");
    } else if (!isRuntimeBuiltin(spec)) {
      const name = packageName(spec);
      const declared = RUNTIME_PACKAGES.has(name) || (isTestFile(file) && DEV_PACKAGES.has(name));
      if (!declared) flag(spec, `package "${name}" is not a declared ${isTestFile(file) ? "" : "runtime "}dependency`);
    }
  }
  if (hasOpaqueImport(source)) flag("(expression)", "import()/require() of a computed specifier cannot be checked");
  // Migrations are found by path, not imported: a module may only point at its own drizzle/ folder.
  for (const m of stripComments(source).matchAll(/["'`][^"'`\n]*\bdrizzle\/([\w-]+)/g)) {
    const folder = m[1] as string;
    if (folder !== own && MODULE_NAMES.includes(folder)) flag(`drizzle/${folder}`, `refers to module "${folder}"'s migrations`);
  }
  return out;
}

/** What is wrong with the modules/ imports of `file` (a path under src/). */
function srcViolations(file: string, source: string): Violation[] {
  const out: Violation[] = [];
  for (const spec of importSpecifiers(source).filter(isRelative)) {
    const target = resolveRelative(file, spec);
    if (!target.startsWith("modules/")) continue;
    if (file !== "src/modules.ts") {
      out.push({ file, specifier: spec, reason: `src/ reaches modules only through src/modules.ts (imports ${target})` });
    } else if (!/^modules\/[^/]+\/index\.ts$/.test(target)) {
      out.push({ file, specifier: spec, reason: `imports ${target}; a module's one door is its index.ts` });
    }
  }
  return out;
}

const read = (file: string) => readFileSync(join(ROOT, file), "utf8");
const describeAll = (vs: Violation[]) => vs.map((v) => `${v.file}: "${v.specifier}" ${v.reason}`);

describe("the detector itself", () => {
  const reasonsFor = (file: string, source: string) => moduleViolations(file, source).map((v) => `${v.specifier} -> ${v.reason}`);

  test("flags every form of a cross-module import", () => {
    const forms = [
      `import { debitOrder } from "../wallet/service";`,
      `import type {\n  WalletView,\n} from "../wallet/service";`,
      `import walletDefault, { type X } from '../wallet/service';`,
      `export { walletModule } from "../wallet";`,
      `export * from "../../modules/wallet/index.ts";`,
      `import "../wallet/schema";`,
      `const svc = await import("../wallet/service");`,
      `type T = typeof import("../wallet/schema");`,
      `const svc = require("../wallet/service");`,
      `import svc = require("../wallet/service");`,
    ];
    for (const source of forms) {
      const found = reasonsFor("modules/storage/fake.ts", source);
      expect(found, source).toHaveLength(1);
      expect(found[0], source).toContain(`imports module "wallet"`);
    }
  });

  test("flags imports outside src/ and the own module, the wiring, undeclared packages, and computed imports", () => {
    const bad: [string, string][] = [
      [`import { eventually } from "../../test/support/eventually";`, "outside src/"],
      [`import pkg from "../../package.json";`, "outside src/"],
      [`import { MODULES } from "../../src/modules";`, "process wiring"],
      [`import { startShop } from "../../src/shop";`, "process wiring"],
      [`import leftPad from "left-pad";`, "not a declared"],
      [`import { Validator } from "@seriousme/openapi-schema-validator";`, "not a declared runtime dependency"],
      [`const m = await import(name);`, "computed specifier"],
      [`const folder = join(import.meta.dir, "../../drizzle/wallet");`, `module "wallet"'s migrations`],
    ];
    for (const [source, reason] of bad) {
      const found = reasonsFor("modules/storage/fake.ts", source);
      expect(found, source).toHaveLength(1);
      expect(found[0], source).toContain(reason);
    }
  });

  test("passes what a module may use, and ignores imports that are only in comments", () => {
    const source = [
      `import { and, eq } from "drizzle-orm";`,
      `import { z } from "zod";`,
      `import { join } from "node:path";`,
      `import type { Executor } from "../../src/db/database";`,
      `import { createMessage } from "../../src/contracts";`,
      `import { stock } from "./schema";`,
      `export { storageModule } from "./index";`,
      `const folder = join(import.meta.dir, "../../drizzle/storage");`,
      `// import { debitOrder } from "../wallet/service";`,
      `/* import "../registry/schema"; */`,
      `const note = "a url like http://example.com/ is not a comment";`,
    ].join("\n");
    expect(moduleViolations("modules/storage/fake.ts", source)).toEqual([]);
    // The string with "//" in it did not swallow what follows it.
    expect(importSpecifiers(`const u = "http://x"; import { y } from "../wallet/y";`)).toEqual(["../wallet/y"]);
  });

  test("a module's test file may use dev dependencies, its code may not", () => {
    const source = `import { Validator } from "@seriousme/openapi-schema-validator";`;
    expect(moduleViolations("modules/storage/storage.test.ts", source)).toEqual([]);
    const support = `import { inTx } from "../../test/support/module-db";`;
    expect(moduleViolations("modules/storage/storage.test.ts", support)).toEqual([]);
    expect(moduleViolations("modules/storage/service.ts", support)).toHaveLength(1);
    expect(moduleViolations("modules/storage/service.ts", source)).toHaveLength(1);
  });

  test("flags src/ files other than src/modules.ts that import modules, and deep imports from src/modules.ts", () => {
    expect(srcViolations("src/shop.ts", `import { walletModule } from "../modules/wallet";`)).toHaveLength(1);
    expect(srcViolations("src/modules.ts", `import { debitOrder } from "../modules/wallet/service";`)).toHaveLength(1);
    expect(srcViolations("src/modules.ts", `import { walletModule } from "../modules/wallet";`)).toEqual([]);
    expect(srcViolations("src/modules.ts", `import { walletModule } from "../modules/wallet/index.ts";`)).toEqual([]);
  });

  test("finds at least every import Bun's own parser finds in the real files", () => {
    const transpiler = new Bun.Transpiler({ loader: "ts" });
    const files = [...tsFiles("modules"), ...tsFiles("src")];
    for (const file of files) {
      const ours = new Set(importSpecifiers(read(file)));
      const bun = transpiler.scanImports(read(file)).map((i) => i.path);
      for (const path of bun) expect(ours.has(path), `${file} imports ${path}`).toBe(true);
    }
  });
});

describe("the real code", () => {
  const moduleFiles = tsFiles("modules");
  const srcFiles = tsFiles("src");

  test("finds every module and its imports", () => {
    expect([...MODULE_NAMES].sort()).toEqual(["registry", "storage", "wallet"]);
    for (const name of MODULE_NAMES) {
      const files = moduleFiles.filter((f) => moduleOf(f) === name);
      expect(files).toContain(`modules/${name}/index.ts`);
      expect(importSpecifiers(read(`modules/${name}/index.ts`))).toContain("../../src/module");
    }
    expect([...WIRING]).toContain("src/modules.ts");
  });

  test("no module imports another module, anything outside src/ and itself, the wiring, or an undeclared package", () => {
    const violations = moduleFiles.flatMap((f) => moduleViolations(f, read(f)));
    expect(describeAll(violations)).toEqual([]);
  });

  test("src/ reaches modules only through src/modules.ts, and only through each module's index.ts", () => {
    const violations = srcFiles.flatMap((f) => srcViolations(f, read(f)));
    expect(describeAll(violations)).toEqual([]);
    const doors = importSpecifiers(read("src/modules.ts"))
      .filter(isRelative)
      .map((s) => resolveRelative("src/modules.ts", s))
      .filter((t) => t.startsWith("modules/"));
    expect(doors.sort()).toEqual(MODULE_NAMES.map((n) => `modules/${n}/index.ts`).sort());
  });
});
