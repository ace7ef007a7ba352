/**
 * README.md: at most 300 lines; what it is and the two commands first (the test command the one
 * .ci/run runs); other ports in "Try it"; the saga diagram; a link to every ADR through
 * docs/adr/README.md; the troubleshooting in docs/operations.md. Links and `bun run` commands
 * are checked for every page by test/docs-links.test.ts; the configuration reference by
 * test/config-reference.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { MODULES } from "../src/app/modules";
import { configReference, MODULE_NAMES } from "../src/config";

const ROOT = join(import.meta.dir, "..");
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");
const readme = read("README.md");

/** A command line without its trailing comment. */
const command = (line: string) => line.replace(/\s+#.*$/, "").trim();

describe("README.md", () => {
  test("is at most 300 lines", () => {
    expect(readme.split("\n").length).toBeLessThanOrEqual(300);
  });

  test("starts with what it is and the commands: install Bun, run the shop, run the tests as CI does", () => {
    expect(readme.startsWith("# Shop\n")).toBe(true);
    const start = readme.indexOf("```sh");
    expect(start).toBeGreaterThan(0);
    expect(start).toBeLessThan(readme.indexOf("\n## "));
    const commands = readme
      .slice(start, readme.indexOf("```", start + 5))
      .split("\n")
      .slice(1)
      .map(command)
      .filter(Boolean);
    expect(commands).toEqual(["npm install -g bun", "bun install && bun run dev", expect.any(String)]);
    // The test command is the one CI runs: the last `bun run test...` line of .ci/run.
    const ci = read(".ci/run")
      .split("\n")
      .map(command)
      .filter((l) => /^bun run test\b/.test(l));
    expect(ci.length).toBeGreaterThan(0);
    expect(commands[2]).toBe(ci[ci.length - 1] as string);
  });

  test('"Try it" says how to take other ports, by variable and by flag, as --help names them', () => {
    const start = readme.indexOf("## Try it");
    const section = readme.slice(start, readme.indexOf("\n## ", start + 5));
    const rows = configReference(MODULE_NAMES.map((m) => MODULES[m])).flatMap((t) => t.rows);
    for (const module of MODULE_NAMES) {
      const port = rows.find((r) => r.variable === `${module.toUpperCase()}_PORT`);
      expect(port?.flag, module).toBe(`--${module}-port`);
      expect(section).toContain(`${module.toUpperCase()}_PORT=`);
      expect(section).toContain(`--${module}-port `);
    }
  });

  test("the saga as a mermaid diagram: the three topics, both outcomes, the compensations", () => {
    const start = readme.indexOf("```mermaid");
    expect(start).toBeGreaterThan(0);
    const diagram = readme.slice(start, readme.indexOf("```", start + 10));
    for (const word of [
      "registry",
      "wallet",
      "storage",
      "new_orders",
      "success_topics",
      "rejected_orders",
      "StepSucceeded",
      "OrderRejected",
      "OrderCompensated",
      "completed",
      "refunded",
    ]) {
      expect(diagram).toContain(word);
    }
  });

  test("links the ADR index, and the index links every ADR", () => {
    expect(readme).toContain("](docs/adr/README.md)");
    const index = read("docs/adr/README.md");
    for (const adr of readdirSync(join(ROOT, "docs/adr")).filter((f) => /^\d{4}-.*\.md$/.test(f))) expect(index).toContain(`](${adr})`);
  });

  test("docs/operations.md's troubleshooting covers the usual first-run problems, and the README points to it", () => {
    const page = read("docs/operations.md");
    const start = page.indexOf("## Troubleshooting");
    expect(start).toBeGreaterThan(0);
    const end = page.indexOf("\n## ", start + 5);
    const section = page.slice(start, end < 0 ? undefined : end);
    for (const topic of ["port is in use", ".lock", "first start", "Kafka", "401", "config error", "Ctrl-C"])
      expect(section).toContain(topic);
    expect(readme).toContain("](docs/operations.md)");
  });
});
