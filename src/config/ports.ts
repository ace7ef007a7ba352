/** Two modules of one process on one port is refused before anything opens. */
import { join } from "node:path";
import { ConfigError, showValue } from "./errors";
import { type Env, origin } from "./flags";
import type { ModuleName } from "./settings";

/** One module's port, as its configuration gave it. */
interface ModulePort {
  module: ModuleName;
  port: number;
}

/**
 * Two modules of one process on one port (0, "any free port", excepted) is a ConfigError naming
 * where each port was set. Called before anything opens.
 */
export function checkPorts(ports: ModulePort[], configDir: string, env: Env): void {
  const seen = new Map<number, ModuleName>();
  const where = (m: ModuleName) => portOrigin(m, configDir, env);
  for (const { module, port } of ports) {
    const other = seen.get(port);
    if (port !== 0 && other) {
      const variable = `${module.toUpperCase()}_PORT`;
      const shown = env[variable] ? showValue(variable, env[variable]) : String(port);
      throw new ConfigError(where(module), `${other} uses port ${port} too (${where(other)}); give each module its own port`, shown);
    }
    seen.set(port, module);
  }
}

/** Where a module's port was set: `--wallet-port`, `WALLET_PORT`, or `<config dir>/wallet.yaml: port`. */
export function portOrigin(module: ModuleName, configDir: string, env: Env): string {
  const variable = `${module.toUpperCase()}_PORT`;
  return env[variable] ? origin(env, variable) : `${join(configDir, `${module}.yaml`)}: port`;
}
