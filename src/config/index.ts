/**
 * Process settings (.env, environment, flags) and module YAML files, validated once at start.
 * The one door of src/config: its importers (`./config`, `../config`) see only what is exported here.
 */
export { closest } from "./did-you-mean";
export { ConfigError } from "./errors";
export { applyFlags, type Env, wantsHelp, wantsVersion } from "./flags";
export { helpText } from "./help";
export { loadModuleConfig, ModuleBaseSchema } from "./module-config";
export { checkPorts, portOrigin } from "./ports";
export { configReference, moduleKeyHelp, type ReferenceRow } from "./reference";
export {
  BUILT_IN_CONFIG_DIR,
  loadSettings,
  MODULE_NAMES,
  type ModuleName,
  pinnedWriters,
  type Settings,
  SettingsSchema,
  type TraceSampler,
} from "./settings";
export { strayVariables } from "./stray-variables";
