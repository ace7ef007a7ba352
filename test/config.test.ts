/** src/config.ts: process settings (defaults, flags over env, errors naming the setting), module YAML with env overrides, and the CLI's exit on bad config. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { RegistryConfigSchema } from "../modules/registry/config";
import { StorageConfigSchema } from "../modules/storage/config";
import { WalletConfigSchema } from "../modules/wallet/config";
import { applyFlags, ConfigError, type Env, loadModuleConfig, loadSettings } from "../src/config";

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
    const env: Env = { MODULES: "registry", BUS: "memory", LOG_LEVEL: "warn" };
    const merged = applyFlags(["--modules", "wallet", "--bus", "kafka", "--registry-port=9100", "--kafka-brokers", "b:1"], env);
    expect(merged).toMatchObject({ MODULES: "wallet", BUS: "kafka", REGISTRY_PORT: "9100", KAFKA_BROKERS: "b:1", LOG_LEVEL: "warn" });
    expect(env).toEqual({ MODULES: "registry", BUS: "memory", LOG_LEVEL: "warn" });
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
  ])("%s=%p is refused by name", (name, value) => {
    const err = configError(() => loadSettings({ [name]: value }));
    // A list names the offending element as NAME.<index>.
    expect(err.setting.split(".")[0]).toBe(name);
    expect(err.message).toStartWith(`${err.setting}: `);
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

  test("an override cannot replace a list or mapping, and a bad override is named like the YAML key", () => {
    const { wallet } = loadAll(CONFIG_DIR, { WALLET_WALLETS: "[]", WALLET_TOPICS: "nope" });
    expect(wallet.wallets.length).toBeGreaterThan(0);
    expect(wallet.topics.new_orders).toBe("new_orders");
    const err = configError(() => loadModuleConfig("registry", RegistryConfigSchema, CONFIG_DIR, { REGISTRY_PORT: "abc" }));
    expect(err.setting).toBe("registry.yaml: port");
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
      expect(loadModuleConfig("registry", RegistryConfigSchema, withRegistry(BASE), {})).toMatchObject({ port: 8000, saga_deadline_seconds: 30 });
    });

    test.each([
      ["port", "-1", "registry.yaml: port"],
      ["port", "70000", "registry.yaml: port"],
      ["saga_deadline_seconds", "abc", "registry.yaml: saga_deadline_seconds"],
      ["consumer_group", "''", "registry.yaml: consumer_group"],
      ["topics", "{ success: '' }", "registry.yaml: topics.success"],
      ["products", "[{ id: 1, sku: A, name: A, price_cents: 9.99 }]", "registry.yaml: products.0.price_cents"],
    ])("%s: %s is refused as %p", (key, value, setting) => {
      const text = `${BASE.split("\n").filter((l) => l && !l.startsWith(`${key}:`)).join("\n")}\n${key}: ${value}\n`;
      const err = configError(() => loadModuleConfig("registry", RegistryConfigSchema, withRegistry(text), {}));
      expect(err.setting).toBe(setting);
      expect(err.message).toStartWith(`${setting}: `);
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
      expect(run.stderr.trim()).toStartWith("config error: registry.yaml: port");
      expect(run.stderr.trim().split("\n")).toHaveLength(1);
    });
  });
});

/** Runs the real entry point with `args`; returns its exit code and output. */
async function runCli(args: string[]) {
  const proc = Bun.spawn([process.execPath, "run", "src/main.ts", ...args], {
    cwd: ROOT,
    // A clean environment, so only the arguments decide what is wrong.
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
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
    expect(run.stderr).toContain("config error: BUS");
    expect(run.stderr.trim().split("\n")).toHaveLength(1);
    expect(run.stdout).toBe("");
  });

  test("an unknown flag stops the process with exit code 2 and a message naming the arguments", async () => {
    const run = await runCli(["--bogus", "1"]);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain("config error: arguments");
  });
});
