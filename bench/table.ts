/** A plain, aligned markdown table. */

/** Renders rows (first row is the header) with every column padded to its widest cell. */
export function renderTable(rows: string[][]): string {
  const columns = Math.max(...rows.map((r) => r.length));
  const widths = Array.from({ length: columns }, (_, c) => Math.max(3, ...rows.map((r) => (r[c] ?? "").length)));
  const line = (cells: string[]) =>
    `| ${widths.map((w, c) => (c === 0 ? (cells[c] ?? "").padEnd(w) : (cells[c] ?? "").padStart(w))).join(" | ")} |`;
  const rule = `|${widths.map((w, c) => (c === 0 ? `:${"-".repeat(w + 1)}` : `${"-".repeat(w + 1)}:`)).join("|")}|`;
  const [head, ...body] = rows;
  return [line(head ?? []), rule, ...body.map(line)].join("\n");
}

/** A number with precision suited to its size (NaN as "-"). */
export function num(n: number): string {
  if (!Number.isFinite(n)) return "-";
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

/** A ratio as "×0.123" (NaN as "-"). */
export function ratio(n: number): string {
  if (!Number.isFinite(n)) return "-";
  return `×${n >= 10 ? n.toFixed(1) : n >= 0.1 ? n.toFixed(2) : n.toFixed(3)}`;
}

const SHORT: Record<string, string> = {
  registry: "r",
  wallet: "w",
  storage: "s",
  wallet2: "w2",
  storage2: "s2",
  postgres: "pg",
  kafka: "kafka",
};

/** A per-process figure: the value alone for one process, else "r 1 · w 2 · s 3" by short name. */
export function perProcess(values: Record<string, number>, fmt: (n: number) => string = num): string {
  const entries = Object.entries(values);
  if (entries.length === 1) return fmt((entries[0] as [string, number])[1]);
  return entries.map(([name, v]) => `${SHORT[name] ?? name} ${fmt(v)}`).join(" · ");
}
