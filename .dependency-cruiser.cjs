/**
 * The layers of the shop, checked by dependency-cruiser (`bun run lint:deps`, run by .ci/run and
 * by test/architecture.test.ts). Paths are relative to the repository root.
 *
 *   contracts  src/contracts/          the messages, topics, flows and report shapes: zod only
 *   plumbing   src/bus, db, http, idempotency, messaging, metrics, tracing, config, log, errors, assets, listeners, request-context, module, work-counters
 *              what any event-driven service needs; may carry contracts, knows no business
 *   saga       src/saga/               rules spanning modules; may use contracts and plumbing
 *   wiring     src/app/                main, shop, modules, start-banner: starts the process; the one
 *              room above modules/: only src/app/modules.ts imports modules, and only each index.ts
 *   modules    modules/<name>/         business; meets other modules only in src/contracts
 *
 * Nothing in src/ outside src/app/ imports src/app/ or modules/; modules never import src/app/.
 *
 * src/module.ts is the interface every module's index.ts implements, so it is plumbing.
 *
 * Idempotency-Key (src/idempotency/: the key store over db, the header and replay over http) reaches
 * modules through one door, src/idempotency/index.ts.
 */

const CONTRACTS = "^src/contracts/";
const PLUMBING = [
  "^src/(bus|db|http|idempotency|messaging|metrics|tracing)/",
  "^src/config(/|\\.ts$)",
  "^src/(log|errors|assets|listeners|request-context|module|work-counters)\\.ts$",
];
const SAGA = "^src/saga/";

/**
 * The plumbing in floors, lowest first: a floor never imports a floor above it. So the plumbing's
 * folders have no cycle between them (config -> log -> tracing -> config was one) and the database
 * never reaches up into messaging (db/retention -> messaging/tables was one).
 */
const PLUMBING_FLOORS = [
  ["ground", ["^src/config/", "^src/(log|loop|errors|assets|request-context|work-counters)\\.ts$"]],
  ["tracing", ["^src/tracing/"]],
  ["db", ["^src/db/"]],
  ["metrics", ["^src/metrics/"]],
  ["bus", ["^src/bus/"]],
  ["http", ["^src/http/"]],
  ["idempotency", ["^src/idempotency/"]],
  ["module", ["^src/(module|listeners)\\.ts$"]],
  ["messaging", ["^src/messaging/"]],
];
const floorRules = PLUMBING_FLOORS.slice(0, -1).map(([name, paths], i) => {
  const above = PLUMBING_FLOORS.slice(i + 1);
  return {
    name: `plumbing-floor-${name}`,
    comment: `Plumbing floor "${name}" imports only lower floors; never ${above.map(([n]) => n).join(", ")}.`,
    severity: "error",
    from: { path: paths },
    to: { path: above.flatMap(([, p]) => p) },
  };
});
const WIRING = "^src/app/";
const MODULES = "^modules/";
const TEST_FILE = "\\.test\\.ts$";
const DEV_TREES = "^(test|bench|sim|scripts)/";

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "contracts-are-plain-schemas",
      comment: "src/contracts imports only zod and itself: no bus, database, HTTP, config, saga, wiring or module.",
      severity: "error",
      from: { path: CONTRACTS },
      to: { pathNot: [CONTRACTS, "^node_modules/zod/"] },
    },
    {
      name: "src-below-the-wiring",
      comment:
        "Everything in src/ but src/app/ (plumbing, contracts, saga, any new folder) never imports src/app/ or modules/: the ground floor never reaches the roof.",
      severity: "error",
      from: { path: "^src/", pathNot: WIRING },
      to: { path: [WIRING, MODULES] },
    },
    {
      name: "plumbing-knows-no-business",
      comment: "Plumbing may carry contracts and use other plumbing; it never imports src/saga (the wiring and modules: src-below-the-wiring).",
      severity: "error",
      from: { path: PLUMBING },
      to: { path: SAGA },
    },
    ...floorRules,
    {
      name: "modules-mounted-in-one-place",
      comment: "In src/app/, only src/app/modules.ts imports modules/.",
      severity: "error",
      from: { path: WIRING, pathNot: "^src/app/modules\\.ts$" },
      to: { path: MODULES },
    },
    {
      name: "one-door-per-module",
      comment: "src/app/modules.ts imports each module through its index.ts and nothing deeper.",
      severity: "error",
      from: { path: "^src/app/modules\\.ts$" },
      to: { path: MODULES, pathNot: "^modules/[^/]+/index\\.ts$" },
    },
    {
      name: "modules-are-isolated",
      comment: "modules/<a> never imports modules/<b>: modules meet only in src/contracts.",
      severity: "error",
      from: { path: "^modules/([^/]+)/" },
      to: { path: MODULES, pathNot: "^modules/$1/" },
    },
    {
      name: "modules-idempotency-through-its-door",
      comment: "A module uses Idempotency-Key only through src/idempotency/index.ts, never store.ts or http.ts directly.",
      severity: "error",
      from: { path: MODULES },
      to: { path: "^src/idempotency/", pathNot: "^src/idempotency/index\\.ts$" },
    },
    {
      name: "modules-not-to-wiring",
      comment: "A module never imports the process wiring, which reaches every module.",
      severity: "error",
      from: { path: MODULES },
      to: { path: WIRING },
    },
    {
      name: "modules-reach-only-src-and-themselves",
      comment: "A module's code imports only src/, modules/ (its own folder: see modules-are-isolated) and packages.",
      severity: "error",
      from: { path: MODULES, pathNot: TEST_FILE },
      to: { pathNot: ["^src/", MODULES, "^node_modules/"], dependencyTypesNot: ["core"] },
    },
    {
      name: "production-not-to-dev-trees",
      comment: "Production code (src, modules) never imports test/, bench/, sim/ or scripts/.",
      severity: "error",
      from: { path: "^(src|modules)/", pathNot: TEST_FILE },
      to: { path: DEV_TREES },
    },
    {
      name: "module-tests-only-to-test-support",
      comment: "A module's own tests may also use test/support (an in-memory database, a capturing outbox), nothing else.",
      severity: "error",
      from: { path: `${MODULES}.*${TEST_FILE}` },
      to: { pathNot: ["^src/", MODULES, "^node_modules/", "^test/support/"], dependencyTypesNot: ["core"] },
    },
    {
      name: "no-circular",
      comment: "No import cycle anywhere (src, modules, sim, scripts, bench, test).",
      severity: "error",
      from: {},
      to: { circular: true },
    },
    {
      name: "not-to-unresolvable",
      comment: "Every import resolves to a file or an installed package.",
      severity: "error",
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: "packages-declared",
      comment: "Every imported package is declared in package.json.",
      severity: "error",
      from: {},
      to: { dependencyTypes: ["npm-no-pkg", "npm-unknown"] },
    },
    {
      name: "production-not-to-dev-dependencies",
      comment: "src/ and modules/ (tests aside) use only `dependencies`; devDependencies are for test, bench, scripts, sim.",
      severity: "error",
      from: { path: "^(src|modules)/", pathNot: TEST_FILE },
      to: { dependencyTypes: ["npm-dev"] },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    // A type-only import is a dependency too: it ties the layers together just the same.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    // Bun's own modules: `bun:*` is recognised by its protocol, the bare `bun` is named here.
    builtInModules: { add: ["bun"] },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default", "types"],
      mainFields: ["module", "main", "types", "typings"],
    },
    reporterOptions: {
      text: { highlightFocused: true },
    },
  },
};
