/** README.md: the two commands first, the saga diagram, a configuration reference that matches the schemas, troubleshooting, links to docs/. */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { BEGIN, END, README, referenceMarkdown } from "../scripts/config-reference";
import { MODULE_NAMES, SettingsSchema } from "../src/config";
import { MODULES } from "../src/modules";
import { schemaKeys } from "./support/schema-keys";

const ROOT = join(import.meta.dir, "..");
const readme = readFileSync(README, "utf8");
const reference = readme.slice(readme.indexOf(BEGIN) + BEGIN.length, readme.indexOf(END));
const lines = reference.split("\n");

/** The reference's table rows for `key`, as cells. */
const rowsOf = (key: string) =>
  lines.filter((l) => l.startsWith(`| \`${key}\` |`)).map((l) => l.split(/(?<!\\)\|/).map((c) => c.trim()).slice(1, -1));

/** A default as the reference shows it. */
const shown = (v: unknown) => (v === undefined ? "unset" : Array.isArray(v) ? (v.length === 0 ? "none" : `\`${v.join(",")}\``) : `\`${String(v)}\``);

describe("README.md", () => {
  test("starts with what it is and the two commands: run the shop, run the tests", () => {
    expect(readme.startsWith("# Shop\n")).toBe(true);
    const firstBlock = readme.slice(readme.indexOf("```sh"), readme.indexOf("```", readme.indexOf("```sh") + 5));
    const commands = firstBlock.split("\n").slice(1).filter(Boolean);
    expect(commands).toHaveLength(2);
    expect(commands[0]).toContain("bun run dev");
    expect(commands[1]).toStartWith("bun run test");
    expect(readme.indexOf("```sh")).toBeLessThan(readme.indexOf("\n## "));
  });

  test("the saga as a mermaid diagram: the three topics, both outcomes, the compensations", () => {
    const start = readme.indexOf("```mermaid");
    expect(start).toBeGreaterThan(0);
    const diagram = readme.slice(start, readme.indexOf("```", start + 10));
    for (const word of ["registry", "wallet", "storage", "new_orders", "success_topics", "rejected_orders", "StepSucceeded", "OrderRejected", "OrderCompensated", "completed", "refunded"]) {
      expect(diagram).toContain(word);
    }
  });

  test("the configuration reference is the one generated from the schemas (bun run scripts/config-reference.ts)", () => {
    expect(readme).toContain(BEGIN);
    expect(readme).toContain(END);
    expect(reference.trim()).toBe(referenceMarkdown().trim());
  });

  test("every process setting appears once, with its default, and nothing else", () => {
    const keys = schemaKeys(SettingsSchema);
    for (const { path, default: value } of keys) {
      const rows = rowsOf(path);
      expect(rows, path).toHaveLength(1);
      expect(rows[0]?.[2], `default of ${path}`).toBe(shown(value));
    }
    const processTable = reference.slice(0, reference.indexOf("**Every module's YAML**"));
    const listed = processTable.split("\n").filter((l) => l.startsWith("| `")).map((l) => l.slice(3, l.indexOf("`", 3)));
    expect(listed.sort()).toEqual(keys.map((k) => k.path).sort());
  });

  test("every key of every module's YAML appears with its default (list items in their list's row), and nothing else", () => {
    const expected = new Set<string>();
    for (const name of MODULE_NAMES) {
      for (const { path, default: value } of schemaKeys(MODULES[name].configSchema)) {
        const [list, item] = path.split("[].") as [string, string | undefined];
        expected.add(list);
        const rows = rowsOf(list);
        expect(rows.length, `${name}: ${path}`).toBeGreaterThan(0);
        if (item) expect(rows.some((r) => new RegExp(`[{,] ${item}[ ,]`).test(r[3] ?? "")), `${name}: ${path}`).toBe(true);
        // The module's own row, or the common one (same default for all).
        else expect(rows.some((r) => r[2] === shown(value)), `default of ${name}: ${path}`).toBe(true);
      }
    }
    const moduleTables = reference.slice(reference.indexOf("**Every module's YAML**"));
    const listed = new Set(moduleTables.split("\n").filter((l) => l.startsWith("| `")).map((l) => l.slice(3, l.indexOf("`", 3))));
    expect([...listed].sort()).toEqual([...expected].sort());
  });

  test("a troubleshooting section covers the usual first-run problems", () => {
    const start = readme.indexOf("## Troubleshooting");
    expect(start).toBeGreaterThan(0);
    const section = readme.slice(start, readme.indexOf("\n## ", start + 5));
    for (const topic of ["port is in use", ".lock", "first start", "Kafka", "401", "config error", "Ctrl-C"]) expect(section).toContain(topic);
  });

  test("links to docs/ resolve, and every ADR is linked", () => {
    const links = [...readme.matchAll(/\]\((docs\/[^)#]+)\)/g)].map((m) => m[1] as string);
    for (const link of links) expect(existsSync(join(ROOT, link)), link).toBe(true);
    for (const adr of readdirSync(join(ROOT, "docs/adr")).filter((f) => f.endsWith(".md"))) expect(links).toContain(`docs/adr/${adr}`);
  });
});
