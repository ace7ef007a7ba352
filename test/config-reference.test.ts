/** docs/configuration.md: its configuration reference is the one generated from the schemas, every setting once with its default. */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { BEGIN, CONFIG_DOC, END, referenceMarkdown } from "../scripts/config-reference";
import { MODULES } from "../src/app/modules";
import { MODULE_NAMES, SettingsSchema } from "../src/config";
import { schemaKeys } from "./support/schema-keys";

const page = readFileSync(CONFIG_DOC, "utf8");
const reference = page.slice(page.indexOf(BEGIN) + BEGIN.length, page.indexOf(END));
const lines = reference.split("\n");

/** The reference's table rows for `key`, as cells. */
const rowsOf = (key: string) =>
  lines
    .filter((l) => l.startsWith(`| \`${key}\` |`))
    .map((l) =>
      l
        .split(/(?<!\\)\|/)
        .map((c) => c.trim())
        .slice(1, -1),
    );

/** A default as the reference shows it. */
const shown = (v: unknown) =>
  v === undefined ? "unset" : Array.isArray(v) ? (v.length === 0 ? "none" : `\`${v.join(",")}\``) : `\`${String(v)}\``;

describe("docs/configuration.md", () => {
  test("the configuration reference is the one generated from the schemas (bun run scripts/config-reference.ts)", () => {
    expect(page).toContain(BEGIN);
    expect(page).toContain(END);
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
    const listed = processTable
      .split("\n")
      .filter((l) => l.startsWith("| `"))
      .map((l) => l.slice(3, l.indexOf("`", 3)));
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
        if (item)
          expect(
            rows.some((r) => new RegExp(`[{,] ${item}[ ,]`).test(r[3] ?? "")),
            `${name}: ${path}`,
          ).toBe(true);
        // The module's own row, or the common one (same default for all).
        else
          expect(
            rows.some((r) => r[2] === shown(value)),
            `default of ${name}: ${path}`,
          ).toBe(true);
      }
    }
    const moduleTables = reference.slice(reference.indexOf("**Every module's YAML**"));
    const listed = new Set(
      moduleTables
        .split("\n")
        .filter((l) => l.startsWith("| `"))
        .map((l) => l.slice(3, l.indexOf("`", 3))),
    );
    expect([...listed].sort()).toEqual([...expected].sort());
  });
});
