/**
 * README.md and every page under docs/: each relative link names a file that exists (and, with a
 * #fragment, a heading of that file, by GitHub's slugs), and each `bun run <name>` names a
 * package.json script or an existing file. The checks are pure functions of the text, so the
 * test also feeds them a broken page and expects each finding.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";

const ROOT = join(import.meta.dir, "..");
const pages = ["README.md", ...[...new Bun.Glob("docs/**/*.md").scanSync({ cwd: ROOT })].sort()];
const scripts = Object.keys((JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts);

/** The text outside fenced code blocks, line by line (a fence's lines become empty, so line numbers hold). */
function prose(markdown: string): string[] {
  let fence: string | null = null;
  return markdown.split("\n").map((line) => {
    const open = /^\s*(```+|~~~+)/.exec(line)?.[1];
    if (fence === null && open) {
      fence = open;
      return "";
    }
    if (fence !== null) {
      if (line.trim().startsWith(fence)) fence = null;
      return "";
    }
    return line;
  });
}

/** GitHub's anchor for a heading's text: inline markup dropped, lower-cased, punctuation gone, spaces as hyphens. */
function slug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/<[^>]+>/g, "")
    .replace(/[`*]/g, "");
  return text
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "")
    .replace(/ /g, "-");
}

/** The anchors of a page's headings; a repeated one gets -1, -2, ... as on GitHub. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const line of prose(markdown)) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = slug(m[1] as string);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** The links of a page outside code, each with its line (a link's text may span lines). */
function links(markdown: string): { target: string; line: number }[] {
  // Inline code blanked out, same length, so that offsets keep their line.
  const text = prose(markdown)
    .join("\n")
    .replace(/`[^`\n]*`/g, (code) => " ".repeat(code.length));
  return [...text.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => ({
    target: m[1] as string,
    line: text.slice(0, m.index).split("\n").length,
  }));
}

/** Every problem with the links of `markdown` (a page at `path`, relative to `root`). */
function brokenLinks(root: string, path: string, markdown: string): string[] {
  const problems: string[] = [];
  for (const { target, line } of links(markdown)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: ...
    const [file, fragment] = target.split("#", 2) as [string, string | undefined];
    const where = `${path}:${line}: ${target}`;
    if (file.startsWith("/")) {
      problems.push(`${where}: a link from the root of a machine, not of the repository`);
      continue;
    }
    if (file === "") {
      if (fragment !== undefined && !anchors(markdown).has(decodeURIComponent(fragment)))
        problems.push(`${where}: no heading #${fragment}`);
      continue;
    }
    const resolved = join(root, dirname(path), decodeURIComponent(file));
    if (relative(root, resolved).startsWith("..")) {
      problems.push(`${where}: outside the repository`);
      continue;
    }
    if (!existsSync(resolved)) {
      problems.push(`${where}: no such file`);
      continue;
    }
    if (fragment !== undefined && resolved.endsWith(".md") && statSync(resolved).isFile()) {
      if (!anchors(readFileSync(resolved, "utf8")).has(decodeURIComponent(fragment))) problems.push(`${where}: no heading #${fragment}`);
    }
  }
  return problems;
}

/** Every `bun run <name>` in `markdown` that names neither a package.json script nor a file. */
function unknownCommands(root: string, path: string, markdown: string, known: string[]): string[] {
  const problems: string[] = [];
  markdown.split("\n").forEach((line, i) => {
    for (const m of line.matchAll(/\bbun run ([A-Za-z0-9_.:/@-]+)/g)) {
      const name = (m[1] as string).replace(/[.:]+$/, "");
      const isFile = name.includes("/") || /\.[cm]?[jt]sx?$/.test(name);
      if (isFile ? !existsSync(join(root, name)) : !known.includes(name)) problems.push(`${path}:${i + 1}: bun run ${name}`);
    }
  });
  return problems;
}

/** Lines that name a path of some machine rather than of the repository. */
function machinePaths(path: string, markdown: string): string[] {
  return markdown
    .split("\n")
    .flatMap((line, i) => (/(^|[\s`("'=])\/(work|tmp\/bash_jobs|root)\//.test(line) ? [`${path}:${i + 1}: ${line.trim()}`] : []));
}

describe("README.md and docs/", () => {
  test("every relative link names a file of the repository, and every #fragment a heading of it", () => {
    const problems = pages.flatMap((p) => brokenLinks(ROOT, p, readFileSync(join(ROOT, p), "utf8")));
    expect(problems).toEqual([]);
  });

  test("every `bun run <name>` names a package.json script or a file", () => {
    const problems = pages.flatMap((p) => unknownCommands(ROOT, p, readFileSync(join(ROOT, p), "utf8"), scripts));
    expect(problems).toEqual([]);
  });

  test("no page names a path of this machine", () => {
    expect(pages.flatMap((p) => machinePaths(p, readFileSync(join(ROOT, p), "utf8")))).toEqual([]);
  });

  test("every page under docs/ is reachable from README.md", () => {
    const reached = new Set<string>(["README.md"]);
    const queue = ["README.md"];
    while (queue.length > 0) {
      const page = queue.shift() as string;
      for (const { target } of links(readFileSync(join(ROOT, page), "utf8"))) {
        const file = target.split("#")[0] as string;
        if (/^[a-z][a-z0-9+.-]*:/i.test(file) || !file.endsWith(".md")) continue;
        const next = relative(ROOT, join(ROOT, dirname(page), decodeURIComponent(file)));
        if (!reached.has(next) && existsSync(join(ROOT, next))) {
          reached.add(next);
          queue.push(next);
        }
      }
    }
    expect(pages.filter((p) => !reached.has(p))).toEqual([]);
  });

  test("the checks find what is broken (a page with a bad file, a bad heading, a bad script and a machine path)", () => {
    const page = [
      "# A page",
      "## Signed records: `BUS_SIGNING_KEY` (Kafka)",
      "[ok](#signed-records-bus_signing_key-kafka) [ok](docs/adr) [ok](README.md#shop) [ok](https://example.com/x.md)",
      "[missing file](docs/nothing-here.md) [missing heading](README.md#no-such-heading) [missing",
      "anchor, its text over two lines](#signed-records)",
      "```sh",
      "[in a fence, not a link](nowhere.md)",
      "```",
      "`[in code, not a link](nowhere.md)`",
      "bun run test, bun run scripts/config-reference.ts, bun run no-such-script, bun run scripts/nothing.ts",
      "see /work/x/README.md",
    ].join("\n");
    expect(brokenLinks(ROOT, "page.md", page).map((p) => p.split(": ").slice(1).join(": "))).toEqual([
      "docs/nothing-here.md: no such file",
      "README.md#no-such-heading: no heading #no-such-heading",
      "#signed-records: no heading #signed-records",
    ]);
    expect(unknownCommands(ROOT, "page.md", page, scripts)).toEqual([
      "page.md:10: bun run no-such-script",
      "page.md:10: bun run scripts/nothing.ts",
    ]);
    expect(machinePaths("page.md", page)).toEqual(["page.md:11: see /work/x/README.md"]);
  });
});
