/** The `--help` text: every flag and variable with its default, and every key of the module YAML files. */
import { configReference, type ModuleHelp, type ReferenceRow } from "./reference";

/** Where the text of a row starts. */
const COLUMN = 44;

/** One row: its names (key, variable, flag), then its meaning and default in the column. */
function helpRow(r: ReferenceRow): string {
  const name = [r.key, r.variable !== r.key ? r.variable : undefined, r.flag].filter(Boolean).join(", ");
  const text = `${r.text} [default: ${r.default}]`;
  // A long name gets its own line, the text below it in the column.
  return name.length < COLUMN ? `  ${name.padEnd(COLUMN)} ${text}` : `  ${name}\n  ${"".padEnd(COLUMN)} ${text}`;
}

/** The `--help` text for a process that can run `modules`. */
export function helpText(modules: readonly ModuleHelp[]): string {
  const lines = [
    "Usage: shop [--flag value ...]   (from the source tree: bun run src/app/main.ts, bun run dev)",
    "",
    "Starts the chosen modules of the shop in one process. Flags win over environment variables,",
    "which win over .env in the working directory and the module YAML files.",
  ];
  for (const [i, section] of configReference(modules).entries()) {
    lines.push("", `${section.title}:`, ...section.rows.map(helpRow));
    if (i === 0)
      lines.push(
        `  ${"-h, --help".padEnd(COLUMN)} print this help and exit`,
        `  ${"-v, --version".padEnd(COLUMN)} print the version and exit`,
      );
  }
  lines.push(
    "",
    "<MODULE>_<KEY> overrides a top-level key of a module this process runs (REGISTRY_SAGA_DEADLINE_SECONDS=10);",
    "TOPIC_* override topic names for all. Lists are set in the file. An unknown key in a YAML file, or a",
    "REGISTRY_*, WALLET_* or STORAGE_* variable that names no key, is an error; exempt are empty values,",
    "<MODULE>_URL (scripts/audit.ts) and the names in IGNORE_VARS. The binary (bun run build) uses its",
    "built-in copy of config/ when ./config is absent and CONFIG_DIR is unset.",
  );
  return lines.join("\n");
}
