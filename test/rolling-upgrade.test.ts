/**
 * A rolling upgrade of one module in the split deployment (mock broker, throwaway PostgreSQL):
 * wallet runs the build in production (test/fixtures/upgrade-from.json, taken from this
 * repository's history with `git archive`), the new build of wallet joins its consumer group
 * while orders flow, the two split the partitions, then the old process is stopped and the new
 * one takes everything. Nothing is dead-lettered by any service, every order becomes final,
 * and the audit finds nothing lost and nothing applied twice.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eventually } from "./support/eventually";
import { adminHeaders, call } from "./support/http";
import { type ShopProcess, startShopProcess } from "./support/process";
import { type SplitService, type SplitShop, startReplica, startSplitShop } from "./support/split-shop";
import { auditUntilClean, newBooks, openAccounts, type Storm, startStorm, waitAllFinal } from "./support/storm";

const ROOT = join(import.meta.dir, "..");
const FROM = (JSON.parse(readFileSync(join(import.meta.dir, "fixtures/upgrade-from.json"), "utf8")) as { rev: string }).rev;
/** Orders placed with the old wallet alone, with both, and with the new one alone. */
const PLACED = { old: 15, mixed: 30, upgraded: 15 };
const TIMEOUT_MS = { load: 90_000, final: 120_000, audit: 60_000, join: 90_000, test: 420_000 };

const ids = (base: number, count: number): number[] => Array.from({ length: count }, (_, i) => base + i + 1);

/** Partitions a process's consumer group holds now, from its last "consumer group joined" line (null while it rebalances). */
function holding(p: ShopProcess): string[] | null {
  for (let i = p.logs.length - 1; i >= 0; i--) {
    const line = p.logs[i] as string;
    if (!line.includes('"consumer group ')) continue;
    const e = JSON.parse(line) as { msg?: string; partitions?: Record<string, number[]> };
    if (e.msg === "consumer group rebalancing") return null;
    if (e.msg === "consumer group joined") return Object.entries(e.partitions ?? {}).flatMap(([t, ps]) => ps.map((n) => `${t}[${n}]`));
  }
  return null;
}

/** Every dead letter of a service, all states. */
async function deadLetters(shop: SplitShop, name: SplitService): Promise<{ key: string; error: string }[]> {
  const r = await call(shop.urls[name], "GET", "/admin/dead-letters?state=all&limit=100", undefined, adminHeaders);
  expect(r.status).toBe(200);
  return r.body.dead_letters;
}

async function waitPlaced(s: Storm, n: number, what: string): Promise<void> {
  const from = s.placed;
  await eventually(() => s.placed >= from + n, TIMEOUT_MS.load, 50).catch(() => {
    throw new Error(`${what}: the storm placed ${s.placed - from} orders of ${n}`);
  });
}

let shop: SplitShop | null = null;
const oldTree = mkdtempSync(join(tmpdir(), "shop-upgrade-from-"));
afterAll(async () => {
  await shop?.stop();
  rmSync(oldTree, { recursive: true, force: true });
});

describe("a rolling upgrade: an old and a new wallet in one consumer group", () => {
  test(
    "orders flow through old, mixed and new; nothing dead-lettered, lost or applied twice",
    async () => {
      // The old build, from history, with its own locked dependencies and patches.
      const archive = Bun.spawnSync(["sh", "-c", `git -C "${ROOT}" archive --format=tar ${FROM} | tar -x -C "${oldTree}"`]);
      if (archive.exitCode !== 0)
        throw new Error(
          `git archive ${FROM}: ${archive.stderr} (a shallow clone lacks the commit: fetch it, or move test/fixtures/upgrade-from.json)`,
        );
      const install = Bun.spawnSync(["bun", "install", "--frozen-lockfile"], { cwd: oldTree, stdout: "pipe", stderr: "pipe" });
      if (install.exitCode !== 0) throw new Error(`bun install in the old build: ${`${install.stderr}`.slice(-800)}`);

      const sh = await startSplitShop();
      shop = sh;
      // Wallet as in production: the old build takes the new one's place.
      await sh.processes.wallet.stop("SIGTERM");
      const port = new URL(sh.urls.wallet).port;
      const oldEnv = { ...sh.env, WALLET_PORT: port, CONFIG_DIR: join(oldTree, "test/fixtures/config") };
      const old = await startShopProcess(["--modules", "wallet"], oldEnv, 1, 60_000, { cwd: oldTree });
      sh.processes.wallet = old;

      const books = newBooks();
      const users = ids(60_000, 30);
      const products = ids(30, 6);
      await openAccounts(sh.urls, books, users, products);
      const storm = startStorm(sh.urls, books, { users, products, clients: 3, thinkMs: 150, label: "rolling upgrade" });
      let mixed = "";
      try {
        await waitPlaced(storm, PLACED.old, "old wallet alone");
        // The new build joins the group: the two hold disjoint parts of the partitions.
        const fresh: ShopProcess = await startReplica(sh, "wallet");
        mixed = await eventually(
          () => {
            const a = holding(old);
            const b = holding(fresh);
            if (!a?.length || !b?.length) throw new Error(`not split yet: old ${a?.join(" ")} / new ${b?.join(" ")}`);
            expect(a.filter((x) => b.includes(x))).toEqual([]);
            return `old holds ${a.join(" ")}; new holds ${b.join(" ")}`;
          },
          TIMEOUT_MS.join,
          100,
        );
        console.log(`[rolling upgrade] ${mixed}`);
        await waitPlaced(storm, PLACED.mixed, "old and new wallets");
        // The old process leaves as an orchestrator stops it; the new one takes every partition.
        expect(await old.stop("SIGTERM")).toBe(0);
        sh.processes.wallet = fresh;
        sh.replicas.splice(sh.replicas.indexOf(fresh), 1);
        sh.urls.wallet = fresh.urls.wallet as string;
        await waitPlaced(storm, PLACED.upgraded, "new wallet alone");
      } finally {
        await storm.stop();
      }

      await waitAllFinal(sh.urls, books, TIMEOUT_MS.final);
      const audit = await auditUntilClean(sh.urls, books, TIMEOUT_MS.audit);
      const dead: Record<string, { key: string; error: string }[]> = Object.fromEntries(
        await Promise.all((["registry", "wallet", "storage"] as const).map(async (n) => [n, await deadLetters(sh, n)] as const)),
      );
      console.log(
        `[rolling upgrade] from ${FROM.slice(0, 12)}: ${books.acknowledged.size} orders, ${audit.counts.completed} completed, ${audit.counts.rejected} rejected, ` +
          `${audit.violations.length} violations, dead letters ${JSON.stringify(Object.fromEntries(Object.entries(dead).map(([n, d]) => [n, d.length])))}`,
      );
      expect(books.stormErrors).toEqual({ count: 0, first: [] });
      expect(dead).toEqual({ registry: [], wallet: [], storage: [] });
      expect(audit.violations).toEqual([]);
      expect(audit.counts.pending).toBe(0);
      expect(books.acknowledged.size).toBeGreaterThanOrEqual(PLACED.old + PLACED.mixed + PLACED.upgraded);
    },
    TIMEOUT_MS.test,
  );
});
