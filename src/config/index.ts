/**
 * Process settings (.env, environment, flags) and module YAML files, validated once at start.
 * The one door of src/config: its importers (`./config`, `../config`) see only what is exported here.
 */
export { closest } from "./did-you-mean";
export { ConfigError } from "./errors";
export { applyFlags, type Env, wantsHelp, wantsVersion } from "./flags";
export { checkPorts, portOrigin } from "./ports";
export { strayVariables } from "./stray-variables";
export { helpText } from "./help";
export { loadModuleConfig, ModuleBaseSchema } from "./module-config";
export { configReference, moduleKeyHelp, type ReferenceRow } from "./reference";
export { BUILT_IN_CONFIG_DIR, loadSettings, pinnedWriters, MODULE_NAMES, type ModuleName, type Settings, SettingsSchema, type TraceSampler } from "./settings";
