/** src/config/: process settings (defaults, flags over env, errors naming the setting), module YAML with env overrides, and the CLI's exit on bad config. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { RegistryConfigSchema } from "../modules/registry/config";
import { StorageConfigSchema } from "../modules/storage/config";
import { WalletConfigSchema } from "../modules/wallet/config";
import { MODULES } from "../src/app/modules";
import {
  applyFlags,
  ConfigError,
  checkPorts,
  closest,
  type Env,
  helpText,
  loadModuleConfig,
  loadSettings,
  MODULE_NAMES,
  moduleKeyHelp,
  strayVariables,
} from "../src/config";
import { lenientMappings, schemaKeys } from "./support/schema-keys";

const ROOT = resolve(import.meta.dir, "..");
const CONFIG_DIR = join(ROOT, "config");

/** The ConfigError `fn` throws. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("expected a ConfigError, but nothing was thrown");
}

describe("process settings", () => {
  test("defaults: all three modules, memory bus, PGlite in ./data, info logs", () => {
    const s = loadSettings({});
    expect(s).toMatchObject({
      MODULES: ["registry", "wallet", "storage"],
      BUS: "memory",
      KAFKA_BROKERS: ["localhost:9092"],
      DATA_DIR: "./data",
      CONFIG_DIR: "./config",
      LOG_LEVEL: "info",
      DATABASE_POOL_SIZE: 10,
    });
    expect(s.DATABASE_URL).toBeUndefined();
  });

  test("values are parsed: lists split and trimmed, duplicates dropped, an empty DATABASE_URL means PGlite", () => {
    const s = loadSettings({
      MODULES: " wallet , storage,wallet",
      KAFKA_BROKERS: "k1:9092, k2:19092",
      DATABASE_URL: "",
      DATABASE_POOL_SIZE: "3",
    });
    expect(s.MODULES).toEqual(["wallet", "storage"]);
    expect(s.KAFKA_BROKERS).toEqual(["k1:9092", "k2:19092"]);
    expect(s.DATABASE_URL).toBeUndefined();
    expect(s.DATABASE_POOL_SIZE).toBe(3);
    expect(loadSettings({ DATABASE_URL: "postgresql://u:p@db:5432/shop" }).DATABASE_URL).toBe("postgresql://u:p@db:5432/shop");
  });

  test("flags override the environment and leave it untouched", () => {
    const env: Env = { MODULES: "registry", BUS: "memory", LOG_LEVEL: "warn", BUS_SIGNING_KEY: "k".repeat(32) };
    const merged = applyFlags(["--modules", "wallet", "--bus", "kafka", "--registry-port=9100", "--kafka-brokers", "b:1"], env);
    expect(merged).toMatchObject({ MODULES: "wallet", BUS: "kafka", REGISTRY_PORT: "9100", KAFKA_BROKERS: "b:1", LOG_LEVEL: "warn" });
    expect(env).toEqual({ MODULES: "registry", BUS: "memory", LOG_LEVEL: "warn", BUS_SIGNING_KEY: "k".repeat(32) });
    const s = loadSettings(merged);
    expect(s.MODULES).toEqual(["wallet"]);
    expect(s.BUS).toBe("kafka");
    expect(s.LOG_LEVEL).toBe("warn");
  });

  test("an unknown flag, a positional argument or a flag without its value is an error about the arguments", () => {
    for (const argv of [["--nope", "x"], ["wallet"], ["--bus"]]) {
      const err = configError(() => applyFlags(argv, {}));
      expect(err.setting).toBe("arguments");
      expect(err.message).toStartWith("arguments: ");
    }
  });

  test.each([
    ["MODULES", "wallet,bogus"],
    ["MODULES", " , "],
    ["BUS", "rabbit"],
    ["KAFKA_BROKERS", "nohost"],
    ["KAFKA_BROKERS", "a:1,b c:2"],
    ["LOG_LEVEL", "loud"],
    ["DATABASE_URL", "mysql://x"],
    ["DATABASE_POOL_SIZE", "0"],
  ])("%s=%p is refused by name, with the value", (name, value) => {
    const err = configError(() => loadSettings({ [name]: value }));
    expect(err.setting).toBe(name);
    expect(err.message).toStartWith(`${name}=${JSON.stringify(value)}: `);
  });

  test("a value from a flag is named by the flag", () => {
    const err = configError(() => loadSettings(applyFlags(["--bus", "rabbit"], { BUS: "memory" })));
    expect(err.message).toStartWith('--bus="rabbit": ');
    const port = configError(() =>
      loadModuleConfig("registry", RegistryConfigSchema, CONFIG_DIR, applyFlags(["--registry-port", "abc"], {})),
    );
    expect(port.message).toBe('--registry-port="abc": expected a number');
  });

  test("secrets are never printed: tokens and keys show their length, a database URL hides its password", () => {
    const token = configError(() => loadSettings({ ADMIN_TOKEN: "hunter2" }));
    expect(token.message).not.toContain("hunter2");
    expect(token.message).toStartWith("ADMIN_TOKEN=(hidden, 7 characters): ");
    for (const name of ["BUS_SIGNING_KEY", "BUS_SIGNING_KEY_PREVIOUS"]) {
      const err = configError(() => loadSettings({ BUS_SIGNING_KEY: "k".repeat(40), [name]: "s3cret-but-short" }));
      expect(err.message).not.toContain("s3cret");
    }
    const url = configError(() => loadSettings({ DATABASE_URL: "mysql://shop:pa55word@db/shop" }));
    expect(url.message).not.toContain("pa55word");
    expect(url.message).toContain('"mysql://shop:***@db/shop"');
  });
});

describe("module YAML", () => {
  const loadAll = (dir: string, env: Env) => ({
    registry: loadModuleConfig("registry", RegistryConfigSchema, dir, env),
    wallet: loadModuleConfig("wallet", WalletConfigSchema, dir, env),
    storage: loadModuleConfig("storage", StorageConfigSchema, dir, env),
  });

  test("the real config/ parses for all three modules, and the seed data agrees across them", () => {
    const { registry, wallet, storage } = loadAll(CONFIG_DIR, {});
    expect([registry.port, wallet.port, storage.port]).toEqual([8000, 8001, 8002]);
    for (const c of [registry, wallet, storage]) {
      expect(c.topics).toEqual({ new_orders: "new_orders", rejected_orders: "rejected_orders", success: "success_topics" });
    }
    expect([registry.consumer_group, wallet.consumer_group, storage.consumer_group]).toEqual(["registry", "wallet", "storage"]);
    expect(registry.saga_deadline_seconds).toBeGreaterThan(0);

    const productIds = registry.products.map((p) => p.id);
    expect(productIds.length).toBeGreaterThan(0);
    expect(new Set(productIds).size).toBe(productIds.length);
    expect(new Set(registry.products.map((p) => p.sku)).size).toBe(productIds.length);
    // Storage keeps stock for exactly the catalogue's products.
    expect(storage.stock.map((s) => s.product_id).sort((a, b) => a - b)).toEqual([...productIds].sort((a, b) => a - b));
    const userIds = wallet.wallets.map((w) => w.user_id);
    expect(userIds.length).toBeGreaterThan(0);
    expect(new Set(userIds).size).toBe(userIds.length);
  });

  test("environment variables override the YAML, each only for its own module", () => {
    const env: Env = { REGISTRY_PORT: "9100", REGISTRY_SAGA_DEADLINE_SECONDS: "5", TOPIC_NEW_ORDERS: "x" };
    const { registry, wallet, storage } = loadAll(CONFIG_DIR, env);
    expect(registry.port).toBe(9100);
    expect(registry.saga_deadline_seconds).toBe(5);
    expect(registry.topics).toEqual({ new_orders: "x", rejected_orders: "rejected_orders", success: "success_topics" });
    expect(wallet.port).toBe(8001);
    expect(storage.port).toBe(8002);
    expect(wallet.topics.new_orders).toBe("x");
    expect(storage.topics.new_orders).toBe("x");
    expect(registry.products.length).toBeGreaterThan(0);
  });

  test("an override of a list or mapping is an error; a bad override is named by its variable, with the value", () => {
    expect(configError(() => loadAll(CONFIG_DIR, { WALLET_WALLETS: "[]" })).message).toBe(
      `WALLET_WALLETS="[]": wallets is a list; set it in ${join(CONFIG_DIR, "wallet.yaml")}`,
    );
    expect(configError(() => loadAll(CONFIG_DIR, { WALLET_TOPICS: "nope" })).setting).toBe("WALLET_TOPICS");
    const err = configError(() => loadModuleConfig("registry", RegistryConfigSchema, CONFIG_DIR, { REGISTRY_PORT: "abc" }));
    expect(err.message).toBe('REGISTRY_PORT="abc": expected a number');
  });

  test("every <MODULE>_* variable the tests, benches, compose and .env.example set is a key of its module", async () => {
    const shapes = { registry: RegistryConfigSchema.shape, wallet: WalletConfigSchema.shape, storage: StorageConfigSchema.shape };
    const files = [...new Bun.Glob("{test,bench}/**/*.ts").scanSync({ cwd: ROOT }), "docker-compose.yml", ".env.example"].filter(
      (f) => f !== "test/config.test.ts" && !f.includes("node_modules"),
    );
    const found = new Set<string>();
    for (const f of files) {
      const text = await Bun.file(join(ROOT, f)).text();
      for (const [, name] of text.matchAll(/\b((?:REGISTRY|WALLET|STORAGE)_[A-Z_]+)\b/g)) found.add(name as string);
      // bench/soak.ts builds names per module: `${m}_KEY`.
      for (const [, key] of text.matchAll(/\$\{m\}_([A-Z_]+)/g)) for (const m of MODULE_NAMES) found.add(`${m.toUpperCase()}_${key}`);
    }
    expect(found.size).toBeGreaterThan(10);
    for (const name of found) {
      const [prefix = "", ...rest] = name.split("_");
      const key = rest.join("_").toLowerCase();
      if (key === "url") continue; // scripts/audit.ts's, exempt
      expect(`${name}: ${key in shapes[prefix.toLowerCase() as keyof typeof shapes]}`).toBe(`${name}: true`);
    }
  });

  test("a <MODULE>_* variable that names no key is an error with a hint, only for the modules loaded; IGNORE_VARS and <MODULE>_URL are exempt", () => {
    const typo = configError(() => loadModuleConfig("registry", RegistryConfigSchema, CONFIG_DIR, { REGISTRY_SAGA_DEADLINE_SECOND: "3" }));
    expect(typo.setting).toBe("REGISTRY_SAGA_DEADLINE_SECOND");
    expect(typo.message).toContain('REGISTRY_SAGA_DEADLINE_SECOND="3": registry has no setting');
    expect(typo.message).toContain("did you mean REGISTRY_SAGA_DEADLINE_SECONDS?");
    const platform = configError(() => loadModuleConfig("storage", StorageConfigSchema, CONFIG_DIR, { STORAGE_DRIVER: "overlay2" }));
    expect(platform.message).toContain("IGNORE_VARS");
    expect(platform.message).not.toContain("did you mean");
    expect(configError(() => loadModuleConfig("wallet", WalletConfigSchema, CONFIG_DIR, { WALLET_port: "1" })).message).toContain(
      "upper case: WALLET_PORT",
    );
    // Not checked: another module's prefix, an empty value, IGNORE_VARS, the audit script's <MODULE>_URL.
    expect(
      loadModuleConfig("storage", StorageConfigSchema, CONFIG_DIR, {
        REGISTRY_BOGUS: "1",
        STORAGE_BOGUS: "",
        STORAGE_DRIVER: "overlay2",
        STORAGE_CLASS: "x",
        IGNORE_VARS: "STORAGE_DRIVER, STORAGE_CLASS",
        STORAGE_URL: "http://localhost:8002",
      }).port,
    ).toBe(8002);
  });

  test("the YAML files in config/ and test/fixtures/config/ have no unknown keys", () => {
    expect(() => loadAll(join(ROOT, "test/fixtures/config"), {})).not.toThrow();
  });

  test("every mapping of every module schema is a strictObject (list items too), so that zod reports a key it does not know", () => {
    expect(lenientMappings(z.strictObject({ topics: z.object({}), items: z.array(z.object({})).default([]) }))).toEqual([
      "topics",
      "items[]",
    ]);
    for (const name of MODULE_NAMES) expect(lenientMappings(MODULES[name].configSchema), name).toEqual([]);
  });

  test("duplicate ports are an error naming where each was set; port 0 may repeat", () => {
    const env: Env = { WALLET_PORT: "8000" };
    const err = configError(() =>
      checkPorts(
        [
          { module: "registry", port: 8000 },
          { module: "wallet", port: 8000 },
        ],
        CONFIG_DIR,
        env,
      ),
    );
    expect(err.message).toBe(
      `WALLET_PORT="8000": registry uses port 8000 too (${join(CONFIG_DIR, "registry.yaml")}: port); give each module its own port`,
    );
    expect(() =>
      checkPorts(
        MODULE_NAMES.map((module) => ({ module, port: 0 })),
        CONFIG_DIR,
        {},
      ),
    ).not.toThrow();
  });

  test("closest: a likely misspelling or a cut-off name, nothing for an unrelated word", () => {
    expect(closest("outbox_pol_ms", ["port", "outbox_poll_ms"])).toBe("outbox_poll_ms");
    expect(closest("SAGA_DEADLINE", ["PORT", "SAGA_DEADLINE_SECONDS"])).toBe("SAGA_DEADLINE_SECONDS");
    expect(closest("DRIVER", ["PORT", "CONSUMER_GROUP"])).toBeUndefined();
  });

  test("help lists every process setting and flag, and each module's variables", () => {
    const text = helpText(MODULE_NAMES.map((m) => MODULES[m]));
    for (const name of Object.keys(loadSettings({}))) expect(text).toContain(`  ${name}`);
    for (const flag of [
      "--modules",
      "--bus",
      "--kafka-brokers",
      "--database-url",
      "--data-dir",
      "--config-dir",
      "--log-level",
      "--registry-port",
      "--wallet-port",
      "--storage-port",
      "--help",
    ]) {
      expect(text).toContain(flag);
    }
    expect(text).toContain("REGISTRY_SAGA_DEADLINE_SECONDS");
    expect(text).toContain("STORAGE_UNRESOLVED_DEAD_LETTER_RETENTION_DAYS");
  });

  test("help lists every key of every module schema (nested keys and list items too), each with a description", () => {
    const lines = helpText(MODULE_NAMES.map((m) => MODULES[m])).split("\n");
    for (const name of MODULE_NAMES) {
      const { configSchema } = MODULES[name];
      const help = moduleKeyHelp(MODULES[name]);
      const section = lines.slice(lines.findIndex((l) => l.startsWith(`${name}: `)));
      for (const { path } of schemaKeys(configSchema)) {
        const [list, item] = path.split("[].");
        // A list's row names its items: "products ... a list of { id, sku, ... }".
        const line = section.find((l) => l === `  ${list}` || l.startsWith(`  ${list} `) || l.startsWith(`  ${list},`));
        expect(line, `${name}: ${path}`).toBeDefined();
        if (item) expect(line).toMatch(new RegExp(`[{,] ${item}[ ,]`));
        else expect(help[path], `description of ${path}`).toBeTruthy();
      }
    }
  });

  describe("bad files", () => {
    let dir: string;

    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), "shop-config-test-"));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    /** A config dir holding only registry.yaml with `text`. */
    function withRegistry(text: string): string {
      const sub = mkdtempSync(join(dir, "case-"));
      writeFileSync(join(sub, "registry.yaml"), text);
      return sub;
    }

    const BASE = "port: 8000\nconsumer_group: registry\nsaga_deadline_seconds: 30\n";

    test("the minimal base document loads, so each case below fails for its one bad value only", () => {
      expect(loadModuleConfig("registry", RegistryConfigSchema, withRegistry(BASE), {})).toMatchObject({
        port: 8000,
        saga_deadline_seconds: 30,
      });
    });

    test.each([
      ["port", "-1", "port", "-1"],
      ["port", "70000", "port", "70000"],
      ["saga_deadline_seconds", "abc", "saga_deadline_seconds", '"abc"'],
      ["consumer_group", "''", "consumer_group", '""'],
      ["topics", "{ success: '' }", "topics.success", '""'],
      ["products", "[{ id: 1, sku: A, name: A, price_cents: 9.99 }]", "products.0.price_cents", "9.99"],
    ])("%s: %s is refused as file: %s=%s", (key, value, path, shown) => {
      const text = `${BASE.split("\n")
        .filter((l) => l && !l.startsWith(`${key}:`))
        .join("\n")}\n${key}: ${value}\n`;
      const sub = withRegistry(text);
      const err = configError(() => loadModuleConfig("registry", RegistryConfigSchema, sub, {}));
      expect(err.setting).toBe(`${join(sub, "registry.yaml")}: ${path}`);
      expect(err.message).toStartWith(`${err.setting}=${shown}: `);
    });

    test.each([
      ["sag_deadline_seconds: 3", "sag_deadline_seconds", "saga_deadline_seconds"],
      ["topics: { succes: s }", "topics.succes", "success"],
      ["products: [{ id: 1, skew: A, name: A, price_cents: 1 }]", "products.0.skew", "sku"],
      ["colour: blue", "colour", null],
    ])("an unknown key (%s) is refused as file: %s, with a hint when close", (line, path, near) => {
      const sub = withRegistry(`${BASE}${line}\n`);
      const err = configError(() => loadModuleConfig("registry", RegistryConfigSchema, sub, {}));
      expect(err.setting).toBe(`${join(sub, "registry.yaml")}: ${path}`);
      expect(err.message).toContain("unknown key");
      if (near) expect(err.message).toContain(`did you mean ${near}?`);
      else expect(err.message).not.toContain("did you mean");
    });

    test("a missing file, unparsable YAML or a non-mapping document names the file", () => {
      const empty = mkdtempSync(join(dir, "empty-"));
      const missing = configError(() => loadModuleConfig("wallet", WalletConfigSchema, empty, {}));
      expect(missing.setting).toBe(join(empty, "wallet.yaml"));
      expect(missing.message).toContain("cannot read");

      const broken = withRegistry("port: [8000\n");
      expect(configError(() => loadModuleConfig("registry", RegistryConfigSchema, broken, {})).setting).toBe(join(broken, "registry.yaml"));

      const list = withRegistry("- port: 8000\n");
      const err = configError(() => loadModuleConfig("registry", RegistryConfigSchema, list, {}));
      expect(err.setting).toBe(join(list, "registry.yaml"));
      expect(err.message).toContain("mapping");
    });

    test("the CLI stops with exit code 2 and one line naming a bad module setting", async () => {
      const bad = join(dir, "cli");
      mkdirSync(bad);
      writeFileSync(join(bad, "registry.yaml"), "port: -1\n");
      const run = await runCli(["--modules", "registry", "--config-dir", bad, "--data-dir", ":memory:"]);
      expect(run.exitCode).toBe(2);
      expect(run.stderr.trim()).toStartWith(`config error: ${join(bad, "registry.yaml")}: port=-1: `);
      expect(run.stderr.trim().split("\n")).toHaveLength(1);
    });
  });
});

/** Runs the real entry point with `args`; returns its exit code and output. */
async function runCli(args: string[], env: Env = {}) {
  const proc = Bun.spawn([process.execPath, "run", "src/app/main.ts", ...args], {
    cwd: ROOT,
    // A clean environment, so only the arguments decide what is wrong.
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { stdout, stderr, exitCode };
}

describe("the CLI", () => {
  test("an invalid --bus stops the process with exit code 2 and a message naming BUS", async () => {
    const run = await runCli(["--bus", "rabbit"]);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toStartWith('config error: --bus="rabbit": ');
    expect(run.stderr.trim().split("\n")).toHaveLength(1);
    expect(run.stdout).toBe("");
  });

  test("--bus kafka without a signing key: exit 2 before connecting, saying how to set one or how to opt out by name", async () => {
    const run = await runCli(["--modules", "wallet", "--bus", "kafka", "--data-dir", ":memory:"], { KAFKA_BROKERS: "127.0.0.1:9" });
    expect(run.exitCode).toBe(2);
    const line = run.stderr.trim();
    expect(line.split("\n")).toHaveLength(1);
    expect(line).toStartWith("config error: BUS_SIGNING_KEY: required with --bus kafka");
    for (const hint of ["openssl rand -base64 48", "BUS_SIGNING_KEY_FILE", "BUS_INSECURE_UNSIGNED_RECORDS=true"])
      expect(line).toContain(hint);
    expect(run.stdout).toBe("");
  });

  test("--help and -h print every flag and variable and exit 0", async () => {
    for (const flag of ["--help", "-h"]) {
      const run = await runCli([flag]);
      expect(run.exitCode).toBe(0);
      for (const f of ["--modules", "--bus", "--database-url", "--config-dir", "--registry-port", "--storage-port"])
        expect(run.stdout).toContain(f);
      for (const v of ["DATABASE_URL", "ADMIN_TOKEN", "IGNORE_VARS", "WALLET_OUTBOX_POLL_MS"]) expect(run.stdout).toContain(v);
      expect(run.stderr).toBe("");
    }
  });

  test("REGISTRY_PORT=abc: exit 2 naming the variable and its value", async () => {
    const run = await runCli(["--data-dir", ":memory:"], { REGISTRY_PORT: "abc" });
    expect(run.exitCode).toBe(2);
    expect(run.stderr.trim()).toBe('config error: REGISTRY_PORT="abc": expected a number');
  });

  test("an unknown key in a module's YAML: exit 2 naming the file and the key", async () => {
    const dir = mkdtempSync(join(tmpdir(), "shop-config-cli-"));
    try {
      writeFileSync(join(dir, "wallet.yaml"), "port: 0\nconsumer_group: wallet\noutbox_pol_ms: 100\n");
      const run = await runCli(["--modules", "wallet", "--data-dir", ":memory:"], { CONFIG_DIR: dir });
      expect(run.exitCode).toBe(2);
      expect(run.stderr.trim()).toStartWith(
        `config error: ${join(dir, "wallet.yaml")}: outbox_pol_ms: unknown key (did you mean outbox_poll_ms?)`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("two modules on one port: exit 2 before the database opens", async () => {
    const run = await runCli(["--data-dir", ":memory:", "--log-level", "info"], { REGISTRY_PORT: "18123", STORAGE_PORT: "18123" });
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain('config error: STORAGE_PORT="18123": registry uses port 18123 too (REGISTRY_PORT)');
    expect(run.stdout + run.stderr).not.toContain("PGlite open");
  });

  test("an unknown flag stops the process with exit code 2 and a message naming the arguments", async () => {
    const run = await runCli(["--bogus", "1"]);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain("config error: arguments");
  });

  test("a misspelt flag names the flag meant; --version prints the version", async () => {
    const run = await runCli(["--registry-prot", "1"]);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain("Unknown option '--registry-prot' (did you mean --registry-port?)");
    const version = await runCli(["--version"]);
    expect(version.exitCode).toBe(0);
    expect(version.stdout.trim()).toBe(`shop ${(await Bun.file(join(ROOT, "package.json")).json()).version} (bun ${Bun.version})`);
  });

  test("a variable one or two edits from a setting is named with the setting meant; other variables are left alone", () => {
    expect(
      strayVariables({
        WALET_PORT: "1",
        LOG_LEVL: "debug",
        REGISTRY_OUTBOX_POL_MS: "5",
        WALLET_PORT: "1",
        HOSTNAME: "x",
        BUN_INSTALL: "x",
        NODE_ENV: "x",
      }),
    ).toEqual([
      { name: "WALET_PORT", meant: "WALLET_PORT" },
      { name: "LOG_LEVL", meant: "LOG_LEVEL" },
    ]);
  });
});

describe("docker-compose.yml", () => {
  interface ComposeService {
    command?: string[];
    environment?: Record<string, string>;
    volumes?: string[];
    depends_on?: Record<string, { condition: string }>;
  }
  const compose = () =>
    parseYaml(readFileSync(join(ROOT, "docker-compose.yml"), "utf8"), { merge: true }) as { services: Record<string, ComposeService> };

  test("every service gets the signing key and the admin token from the keys volume, made before they start; no secret is written in the file", async () => {
    const { services } = compose();
    for (const name of ["registry", "wallet", "storage"]) {
      const s = services[name] as ComposeService;
      expect(s.command).toContain("kafka");
      expect(s.environment?.BUS_SIGNING_KEY_FILE).toBe("/run/shop-keys/bus-signing-key");
      expect(s.environment?.ADMIN_TOKEN_FILE).toBe("/run/shop-keys/admin-token");
      expect(s.environment?.BUS_SIGNING_KEY).toBeUndefined();
      expect(s.environment?.ADMIN_TOKEN).toBeUndefined();
      expect(s.environment?.BUS_INSECURE_UNSIGNED_RECORDS).toBeUndefined();
      expect(s.volumes).toContain("shop-keys:/run/shop-keys:ro");
      expect(s.depends_on?.keys).toEqual({ condition: "service_completed_successfully" });
    }
    const text = await Bun.file(join(ROOT, "docker-compose.yml")).text();
    for (const [, value] of text.matchAll(/(?:BUS_SIGNING_KEY|ADMIN_TOKEN)\w*:\s*"([^"]*)"/g))
      expect(value as string).toMatch(/^\$\{(BUS_SIGNING_KEY|ADMIN_TOKEN)\w*:-\}$|^\/run\//);
  });

  test("the keys script makes a signing key and an admin token the services accept, keeps them on the next run, and takes .env's instead", async () => {
    const keys = compose().services.keys as ComposeService;
    const dir = mkdtempSync(join(tmpdir(), "shop-keys-"));
    try {
      // The script as the container runs it: Compose's $$ is a $; the volume is a temporary directory; no bun user here.
      const script = (keys.command?.[0] ?? "")
        .replaceAll("$$", "$")
        .replaceAll("/run/shop-keys", dir)
        .replace(/^chown .*$/m, "");
      const run = (env: Record<string, string> = {}) => {
        const r = Bun.spawnSync(["sh", "-c", script], { env: { PATH: process.env.PATH, ...env } });
        expect(r.exitCode).toBe(0);
        return [readFileSync(join(dir, "bus-signing-key"), "utf8"), readFileSync(join(dir, "admin-token"), "utf8")] as const;
      };
      const [key, token] = run();
      expect(key.length).toBeGreaterThanOrEqual(64);
      const settings = loadSettings({
        BUS: "kafka",
        BUS_SIGNING_KEY_FILE: join(dir, "bus-signing-key"),
        ADMIN_TOKEN_FILE: join(dir, "admin-token"),
      });
      expect(settings.BUS_SIGNING_KEY).toBe(key);
      expect(settings.ADMIN_TOKEN).toBe(token);
      expect(run()).toEqual([key, token]);
      const chosen = { BUS_SIGNING_KEY: "from-dot-env-".padEnd(40, "e"), ADMIN_TOKEN: "admin-from-dot-env-1234" };
      expect(run(chosen)).toEqual([chosen.BUS_SIGNING_KEY, chosen.ADMIN_TOKEN]);
      expect(() => loadSettings({ ADMIN_TOKEN: chosen.ADMIN_TOKEN, ADMIN_TOKEN_FILE: join(dir, "admin-token") })).toThrow(
        "ADMIN_TOKEN is set too",
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
