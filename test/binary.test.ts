/** The single executable (`bun run build`): runs from any directory with its embedded migrations, config, PGlite and Swagger UI. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eventually } from "./support/eventually";
import { adminHeaders, call, getJson, TEST_ADMIN_TOKEN } from "./support/http";
import { startKafkaMock } from "./support/kafka-mock";
import { startPostgresCluster } from "./support/postgres-cluster";
import { startShopProcess } from "./support/process";
import { createDatabase, TEST_BUS_SIGNING_KEY, TOPICS } from "./support/shop-target";
import { MOCK_KAFKA_SETTINGS } from "./support/split-shop";

const ROOT = join(import.meta.dir, "..");
const work = mkdtempSync(join(tmpdir(), "shop-binary-"));
const binary = join(work, "shop");
/** Where the binary runs: nothing there but a .env, so config and migrations must come from inside it. */
const cwd = join(work, "run");

/** Just enough environment to start: loopback, free ports; the rest comes from ./.env and the binary. */
const env = { HOST: "127.0.0.1", REGISTRY_PORT: "0", WALLET_PORT: "0", STORAGE_PORT: "0", LOG_LEVEL: "info" };

beforeAll(async () => {
  const build = Bun.spawn(["bun", "run", "scripts/build.ts", "--outfile", binary], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const [code, out, err] = await Promise.all([build.exited, new Response(build.stdout).text(), new Response(build.stderr).text()]);
  if (code !== 0) throw new Error(`build failed (${code}): ${out}${err}`);
  mkdirSync(cwd);
  writeFileSync(join(cwd, ".env"), `ADMIN_TOKEN=${TEST_ADMIN_TOKEN}\n`);
}, 240_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("the binary", () => {
  test("is one file, and --help works from anywhere", () => {
    expect(readdirSync(work).sort()).toEqual(["run", "shop"]);
    const help = Bun.spawnSync([binary, "--help"], { cwd, env: { PATH: process.env.PATH } });
    expect(help.exitCode).toBe(0);
    expect(help.stdout.toString()).toContain("MODULES, --modules");
  });

  test("all modules from an empty directory: fresh data dir, migrations, built-in config, an order completes, Swagger UI, SIGTERM stops cleanly", async () => {
    const shop = await startShopProcess([], env, 3, 120_000, { command: [binary], cwd });
    try {
      expect(existsSync(join(cwd, "data"))).toBe(true);
      // Without a terminal the banner's facts come as the ready line.
      const ready = JSON.parse(shop.logs.find((l) => l.includes('"msg":"ready"')) as string);
      const port = (url: string | undefined) => new URL(url as string).port;
      expect(ready).toMatchObject({
        modules: ["registry", "wallet", "storage"],
        // The binary's embedded database is durable too (issue 24).
        database: `PGlite in ${join(cwd, "data")} (every commit fsynced before its answer)`,
        config: "built into the binary (there is no ./config)",
        live_page: `http://localhost:${port(shop.urls.registry)}/`,
        swagger: { storage: `http://localhost:${port(shop.urls.storage)}/swagger/` },
      });
      expect(ready.ready_ms).toBeGreaterThan(0);
      expect(shop.logs.some((l) => l.includes('"msg":"opening the embedded database"') && l.includes('"first_start":true'))).toBe(true);
      for (const url of Object.values(shop.urls)) expect((await call(url, "GET", "/health")).status).toBe(200);
      const { registry, wallet, storage } = shop.urls as Record<"registry" | "wallet" | "storage", string>;
      // The built-in config seeds user 1 with 1000.00 and product 2 (29.99) with 100 in stock.
      const before = await getJson(wallet, "/wallets/1");
      const placed = await call(registry, "POST", "/orders", { user_id: 1, items: [{ product_id: 2, quantity: 2 }] });
      expect(placed.status).toBe(201);
      await eventually(async () => (await getJson(registry, `/orders/${placed.body.id}`)).status === "completed", 30_000);
      expect((await getJson(wallet, "/wallets/1")).balance_cents).toBe(before.balance_cents - 2 * 2999);
      expect(await getJson(storage, "/stock/2")).toMatchObject({ reserved: 2 });
      // ADMIN_TOKEN came from ./.env.
      expect((await call(wallet, "POST", "/wallets/1/deposits", { amount_cents: 100 }, adminHeaders)).status).toBe(201);
      const ui = await fetch(`${registry}/swagger/`);
      expect(ui.status).toBe(200);
      const page = await ui.text();
      expect(page).toContain("swagger-ui-bundle.js");
      for (const asset of ["swagger-ui.css", "swagger-ui-bundle.js"]) {
        const res = await fetch(`${registry}/swagger/assets/swagger-ui-dist/${asset}`);
        expect(res.status).toBe(200);
        expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(10_000);
      }
      expect((await call(registry, "GET", "/openapi.json")).status).toBe(200);
    } finally {
      expect(await shop.stop("SIGTERM")).toBe(0);
    }
    expect(shop.logs.some((l) => l.includes('"msg":"stopped"'))).toBe(true);
    expect(existsSync(join(cwd, "data.lock"))).toBe(false);
  }, 240_000);

  test("a subset (wallet, storage) on the same data directory: data kept, SIGINT stops cleanly", async () => {
    const shop = await startShopProcess(["--modules", "wallet,storage"], env, 2, 120_000, { command: [binary], cwd });
    try {
      expect(Object.keys(shop.urls).sort()).toEqual(["storage", "wallet"]);
      for (const url of Object.values(shop.urls)) expect((await call(url, "GET", "/health")).status).toBe(200);
      // The first test's order and deposit are still there.
      expect((await getJson(shop.urls.wallet as string, "/wallets/1")).balance_cents).toBe(100_000 - 2 * 2999 + 100);
      expect(await getJson(shop.urls.storage as string, "/stock/2")).toMatchObject({ reserved: 2 });
    } finally {
      expect(await shop.stop("SIGINT")).toBe(0);
    }
    expect(shop.logs.some((l) => l.includes('"msg":"stopped"'))).toBe(true);
  }, 240_000);

  test("the split deployment from three copies of it: Kafka and PostgreSQL, an order completes", async () => {
    const kafka = await startKafkaMock(Object.values(TOPICS).map((t) => `${t}:3`));
    const postgres = await startPostgresCluster({ name: "binary" });
    const started: Awaited<ReturnType<typeof startShopProcess>>[] = [];
    try {
      // The signing key from a file, as a Docker secret gives it (Kafka needs one).
      const keyFile = join(cwd, "bus-signing-key");
      writeFileSync(keyFile, `${TEST_BUS_SIGNING_KEY}\n`, { mode: 0o600 });
      const split = {
        ...env,
        BUS: "kafka",
        KAFKA_BROKERS: kafka.brokers,
        DATABASE_URL: await createDatabase(postgres.url),
        BUS_SIGNING_KEY_FILE: keyFile,
        ...MOCK_KAFKA_SETTINGS,
      };
      for (const name of ["registry", "wallet", "storage"]) {
        started.push(await startShopProcess(["--modules", name], split, 1, 120_000, { command: [binary], cwd }));
      }
      const [registry, wallet] = started.map((p) => Object.values(p.urls)[0] as string) as [string, string];
      const ready = JSON.parse(started[1]?.logs.find((l) => l.includes('"msg":"ready"')) as string);
      expect(ready).toMatchObject({ mode: "service: wallet only", bus: `Kafka at ${kafka.brokers} (records signed)` });
      expect(ready.database).toStartWith("PostgreSQL at 127.0.0.1:");
      const placed = await call(registry, "POST", "/orders", { user_id: 2, items: [{ product_id: 7, quantity: 3 }] });
      expect(placed.status).toBe(201);
      await eventually(async () => (await getJson(registry, `/orders/${placed.body.id}`)).status === "completed", 60_000);
      expect((await getJson(wallet, "/wallets/2")).balance_cents).toBe(50_000 - 3 * 999);
    } finally {
      for (const p of started) expect(await p.stop("SIGTERM")).toBe(0);
      await kafka.stop();
      await postgres.stop();
    }
    for (const p of started) expect(p.logs.some((l) => l.includes('"msg":"stopped"'))).toBe(true);
  }, 240_000);
});
