/** Command-line flags folded into the environment map, and where each value came from: a flag, a variable or a file. */
import { parseArgs } from "node:util";
import { didYouMean } from "./did-you-mean";
import { ConfigError } from "./errors";

/** Environment-like input: a map of names to string values. */
export type Env = Record<string, string | undefined>;

/** Command-line flags, each the kebab-case twin of a setting (`--modules` is MODULES). */
const FLAGS = [
  "modules",
  "bus",
  "kafka-brokers",
  "database-url",
  "data-dir",
  "config-dir",
  "log-level",
  "log-format",
  "registry-port",
  "wallet-port",
  "storage-port",
] as const;

const settingOf = (flag: string) => flag.toUpperCase().replaceAll("-", "_");

const FLAG_OF = new Map(FLAGS.map((f) => [settingOf(f), `--${f}`]));

/** The flag that sets `name` (`--modules` for MODULES), if it has one. */
export function flagOf(name: string): string | undefined {
  return FLAG_OF.get(name);
}

/** Which entries of an env map did not come from a variable of that name (name -> `--flag`, or the key file). */
const origins = new WeakMap<Env, Map<string, string>>();

/** Where a setting's value came from, as the user wrote it: `--flag` or the variable's name. */
export function origin(env: Env, name: string): string {
  return origins.get(env)?.get(name) ?? name;
}

/** `env` with `name` set to `value`, which errors then name by `source` (e.g. the file it was read from). */
export function withValueFrom(env: Env, name: string, value: string, source: string): Env {
  const out: Env = { ...env, [name]: value };
  origins.set(out, new Map([...(origins.get(env) ?? []), [name, source]]));
  return out;
}

/** True when the arguments ask for help (`--help` or `-h`). */
export function wantsHelp(argv: string[]): boolean {
  return argv.includes("--help") || argv.includes("-h");
}

/** True when the arguments ask for the version (`--version` or `-v`). */
export function wantsVersion(argv: string[]): boolean {
  return argv.includes("--version") || argv.includes("-v");
}

/** Folds command-line flags into the environment map; flags win over the environment. */
export function applyFlags(argv: string[], env: Env): Env {
  let values: Record<string, string | boolean | undefined>;
  try {
    const options = Object.fromEntries(FLAGS.map((f) => [f, { type: "string" as const }]));
    values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    const message = (err as Error).message;
    // "Unknown option '--registry-prot'": name the flag that was probably meant.
    const unknown = /Unknown option '--([^'=]+)/.exec(message)?.[1];
    const hint = unknown ? didYouMean(unknown, FLAGS, (f) => `--${f}`) : "";
    throw new ConfigError("arguments", `${message}${hint} (see --help)`);
  }
  const out: Env = { ...env };
  const flags = new Map<string, string>();
  for (const [flag, value] of Object.entries(values)) {
    if (typeof value !== "string") continue;
    out[settingOf(flag)] = value;
    flags.set(settingOf(flag), `--${flag}`);
  }
  origins.set(out, flags);
  return out;
}
