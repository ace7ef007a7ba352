/**
 * Variables that look like a misspelt setting (`WALET_PORT` for WALLET_PORT): the process
 * environment holds many variables that are not the shop's, so these are warned about at start,
 * never refused. `<MODULE>_*` names are checked with the module's keys (module-overrides.ts).
 */
import { distance } from "./did-you-mean";
import type { Env } from "./flags";
import { ModuleBaseSchema } from "./module-config";
import { MODULE_NAMES, SettingsSchema } from "./settings";

/** Process settings and every module's shared keys as variables (WALLET_PORT, REGISTRY_CONSUMER_GROUP, ...). */
const SETTINGS = [
  ...Object.keys(SettingsSchema.shape),
  ...MODULE_NAMES.flatMap((m) => Object.keys(ModuleBaseSchema.shape).map((k) => `${m}_${k}`.toUpperCase())),
];
const MODULE_PREFIXES = MODULE_NAMES.map((m) => `${m.toUpperCase()}_`);

/** Each variable of `env` that is not a setting but is one or two edits away from one, with that setting. */
export function strayVariables(env: Env): { name: string; meant: string }[] {
  const out: { name: string; meant: string }[] = [];
  for (const name of Object.keys(env)) {
    if (name.length < 6 || !/^[A-Z][A-Z0-9]*_[A-Z0-9_]+$/.test(name) || SETTINGS.includes(name)) continue;
    if (MODULE_PREFIXES.some((p) => name.startsWith(p))) continue;
    let meant: string | undefined;
    let best = 3;
    for (const s of SETTINGS) {
      const d = distance(name, s);
      if (d < best) [meant, best] = [s, d];
    }
    if (meant) out.push({ name, meant });
  }
  return out;
}
