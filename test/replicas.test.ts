/**
 * Several processes per module in one consumer group (the split deployment over librdkafka's mock
 * broker and a throwaway PostgreSQL): registry, two wallet and two storage processes, each pair on
 * different HTTP ports in the same consumer group. Their "consumer group joined" log lines show
 * the partitions split between the two members of each group; both wallets answer alike. Then,
 * while a storm of orders runs, one wallet and one storage process are killed with SIGKILL: the
 * survivors take over every partition (log lines again), every order becomes final and the audit
 * finds nothing lost and nothing applied twice. Prints its figures like test/faults-split.test.ts.
 *
 * Why joining takes seconds here, and what the kafkajs patch does about the mock's SyncGroup, is
 * in docs/adr/0011-consumer-groups-of-several-on-the-mock-broker.md.
 */
import { afterAll, describe, expect, test } from "bun:test";
import type { ShopUrls } from "./support/audit";
import { eventually } from "./support/eventually";
import type { ShopProcess } from "./support/process";
import { type SplitShop, startReplica, startSplitShop } from "./support/split-shop";
import { auditUntilClean, type Books, newBooks, openAccounts, printTimelines, type Storm, startStorm, waitAllFinal } from "./support/storm";

/** Partitions of every topic (startSplitShop creates them with 3). */
const PARTITIONS = 3;
/** Storm shape: clients, users per storm (at most 16 orders each), each client's pause between orders. */
const CLIENTS = 4;
const USERS_PER_STORM = 24;
const THINK_MS = 200;
/** Orders the first storm places (then settles, to compare the wallets); the second places before the kill and after the takeover. */
const PLACED_QUIET = 30;
const PLACED_BEFORE_KILL = 40;
const PLACED_AFTER_TAKEOVER = 30;
/** A POST that hangs this long counts as `timeout`, a storm error. */
const REQUEST_TIMEOUT_MS = 15_000;
/** Generous bounds: CI is a busy two-core box. */
const SPLIT_TIMEOUT_MS = 60_000;
const TAKEOVER_TIMEOUT_MS = 60_000;
const LOAD_TIMEOUT_MS = 60_000;
const FINAL_TIMEOUT_MS = 120_000;
const AUDIT_TIMEOUT_MS = 60_000;
const TEST_TIMEOUT_MS = 300_000;
/** Refusals the storm may meet: admission control (the storm only talks to registry, which stays up). */
const REFUSALS_EXPECTED = new Set(["503 overloaded"]);

/** `count` ids starting after `base`. */
const ids = (base: number, count: number): number[] => Array.from({ length: count }, (_, i) => base + i + 1);

/** Partitions per topic. */
type Assignment = Record<string, number[]>;

/** One "consumer group joined" or "consumer group rebalancing" log line of src/bus/kafka/member.ts. */
interface GroupEvent {
  kind: "joined" | "rebalancing";
  group: string;
  member: string;
  partitions: Assignment;
}

/** The process's group events so far, oldest first. */
function groupEvents(p: ShopProcess): GroupEvent[] {
  const out: GroupEvent[] = [];
  for (const line of p.logs) {
    if (!line.includes('"consumer group ')) continue;
    try {
      const e = JSON.parse(line) as { msg?: string; group?: string; member?: string; partitions?: Assignment };
      if ((e.msg === "consumer group joined" || e.msg === "consumer group rebalancing") && e.group) {
        out.push({
          kind: e.msg === "consumer group joined" ? "joined" : "rebalancing",
          group: e.group,
          member: e.member ?? "?",
          partitions: e.partitions ?? {},
        });
      }
    } catch {}
  }
  return out;
}

/** What the process holds in `group` now: its last join's partitions, or null while it rebalances (or never joined). */
function holding(p: ShopProcess, group: string): { member: string; partitions: Assignment; joins: number } | null {
  const events = groupEvents(p).filter((e) => e.group === group);
  const last = events.at(-1);
  if (last?.kind !== "joined") return null;
  return { member: last.member, partitions: last.partitions, joins: events.filter((e) => e.kind === "joined").length };
}

/** `topic[partition]` names of an assignment, sorted. */
const names = (a: Assignment): string[] =>
  Object.entries(a)
    .flatMap(([t, ps]) => ps.map((p) => `${t}[${p}]`))
    .sort();
const show = (a: Assignment): string => names(a).join(" ");

/** The consumer groups a process is in (from its log lines) and every partition of their topics. */
function groupsOf(p: ShopProcess): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const e of groupEvents(p)) {
    if (e.kind !== "joined") continue;
    const all = Object.keys(e.partitions).flatMap((t) => Array.from({ length: PARTITIONS }, (_, i) => `${t}[${i}]`));
    out.set(e.group, [...new Set([...(out.get(e.group) ?? []), ...all])].sort());
  }
  return out;
}

/** Throws unless the two processes hold disjoint, non-empty parts of `all` that together make all of it. */
function assertSplit(group: string, all: string[], a: ShopProcess, b: ShopProcess): string {
  const ha = holding(a, group);
  const hb = holding(b, group);
  if (!ha || !hb) throw new Error(`${group}: a member is rebalancing or has not joined`);
  const na = names(ha.partitions);
  const nb = names(hb.partitions);
  if (ha.member === hb.member) throw new Error(`${group}: both processes report member ${ha.member}`);
  if (na.length === 0 || nb.length === 0) throw new Error(`${group}: a member holds nothing (${na.length}/${nb.length})`);
  if (na.some((x) => nb.includes(x))) throw new Error(`${group}: both hold ${na.filter((x) => nb.includes(x)).join(" ")}`);
  const union = [...na, ...nb].sort();
  if (union.join() !== all.join()) throw new Error(`${group}: together they hold ${union.join(" ")}, not ${all.join(" ")}`);
  return `${group}: ${ha.member} holds ${show(ha.partitions)} | ${hb.member} holds ${show(hb.partitions)}`;
}

let shop: SplitShop | null = null;

afterAll(async () => {
  await shop?.stop();
  shop = null;
});

describe("several processes per module in one consumer group (split deployment, mock broker)", () => {
  test(
    "two wallets and two storages split their partitions; after a kill -9 of one of each mid-load the survivors take over, every order is final and the books balance",
    async () => {
      const label = "replicas";
      const t0 = Date.now();
      const sh = await startSplitShop();
      shop = sh;
      console.log(`[${label}] split shop ready after ${Date.now() - t0} ms`);
      const wallet1 = sh.processes.wallet;
      const storage1 = sh.processes.storage;
      const groups = { wallet: groupsOf(wallet1), storage: groupsOf(storage1) };
      for (const [module, gs] of Object.entries(groups)) {
        expect({ module, groups: gs.size > 0 }).toEqual({ module, groups: true });
        for (const [g, all] of gs) console.log(`[${label}] ${module} group ${g}: ${all.length} partitions (${all.join(" ")})`);
      }

      // A second wallet and a second storage process join the same groups.
      const r0 = Date.now();
      const [wallet2, storage2] = await Promise.all([startReplica(sh, "wallet"), startReplica(sh, "storage")]);
      const replicasReadyMs = Date.now() - r0;
      const pairs: Array<[string, ShopProcess, ShopProcess]> = [
        ...[...groups.wallet.keys()].map((g) => [g, wallet1, wallet2] as [string, ShopProcess, ShopProcess]),
        ...[...groups.storage.keys()].map((g) => [g, storage1, storage2] as [string, ShopProcess, ShopProcess]),
      ];
      const allOf = (g: string): string[] => groups.wallet.get(g) ?? groups.storage.get(g) ?? [];
      const splits = await eventually(() => pairs.map(([g, a, b]) => assertSplit(g, allOf(g), a, b)), SPLIT_TIMEOUT_MS, 100);
      const splitMs = Date.now() - r0;
      console.log(`[${label}] second wallet and storage ready after ${replicasReadyMs} ms, partitions split after ${splitMs} ms:`);
      for (const s of splits) console.log(`[${label}]   ${s}`);

      const urls: ShopUrls = sh.urls;
      const wallets = [wallet1, wallet2].map((p) => p.urls.wallet ?? "");
      const books = newBooks();
      const products = ids(30, 6);

      // Storm 1, then quiet: both wallet processes give the same answers, and both storages.
      const usersA = ids(40_000, USERS_PER_STORM);
      await openAccounts(urls, books, usersA, products);
      const stormA = storm(urls, books, usersA, products, `${label} quiet`);
      try {
        await waitPlaced(stormA, 0, PLACED_QUIET, "first storm");
      } finally {
        await stormA.stop();
      }
      await waitAllFinal(urls, books, FINAL_TIMEOUT_MS);
      const sameWallets = await sameAnswers(
        wallets,
        usersA.map((u) => `/wallets/${u}`),
      );
      const sameStock = await sameAnswers(
        [storage1, storage2].map((p) => p.urls.storage ?? ""),
        products.map((p) => `/stock/${p}`),
      );
      console.log(
        `[${label}] ${stormA.placed} orders settled; GET /wallets/{id} alike on both wallets for ${sameWallets} users, GET /stock/{id} alike on both storages for ${sameStock} products`,
      );

      // Storm 2: kill -9 one wallet and one storage process mid-load.
      const usersB = ids(41_000, USERS_PER_STORM);
      await openAccounts(urls, books, usersB, []);
      const stormB = storm(urls, books, usersB, products, `${label} kill -9`);
      let takeover = "";
      let survivors: ShopUrls = urls;
      try {
        await waitPlaced(stormB, 0, PLACED_BEFORE_KILL, "before the kill");
        // Kill the first of each pair (each group's leader: the mock elects its oldest member).
        const before = new Map(pairs.map(([g, , b]) => [g, holding(b, g)?.joins ?? 0]));
        const inFlight = stormB.inFlight;
        const placedAtKill = stormB.placed;
        const killedAt = Date.now();
        const codes = await Promise.all([wallet1.stop("SIGKILL"), storage1.stop("SIGKILL")]);
        survivors = { registry: urls.registry, wallet: wallet2.urls.wallet ?? "", storage: storage2.urls.storage ?? "" };
        const took = await Promise.all(
          pairs.map(async ([g, , b]) => {
            const h = await Promise.race([
              eventually(
                () => {
                  const now = holding(b, g);
                  if (!now || now.joins <= (before.get(g) ?? 0)) throw new Error(`${g}: the survivor has not rejoined`);
                  if (names(now.partitions).join() !== allOf(g).join()) throw new Error(`${g}: the survivor holds ${show(now.partitions)}`);
                  return now;
                },
                TAKEOVER_TIMEOUT_MS,
                50,
              ),
              firstExit([sh.processes.registry, wallet2, storage2]),
            ]);
            return `${g}: ${h.member} holds all ${names(h.partitions).length} partitions ${Date.now() - killedAt} ms after the kill`;
          }),
        );
        takeover = `killed wallet and storage (exit ${codes.join(", ")}) with ${inFlight} POSTs in flight after ${placedAtKill} orders; ${took.join("; ")}`;
        console.log(`[${label}] ${takeover}`);
        await waitPlaced(stormB, stormB.placed, PLACED_AFTER_TAKEOVER, "after the takeover");
      } finally {
        await stormB.stop();
      }

      // Every order final, the books balance, through the surviving processes.
      const finalMs = await Promise.race([
        waitAllFinal(survivors, books, FINAL_TIMEOUT_MS),
        firstExit([sh.processes.registry, wallet2, storage2]),
      ]).catch((err: Error) => {
        console.log(`[${label}] not every order final: ${err.message}`);
        return null;
      });
      for (const p of [sh.processes.registry, wallet2, storage2]) expect(p.proc.exitCode).toBeNull();
      const audit = await auditUntilClean(survivors, books, AUDIT_TIMEOUT_MS);
      console.log(
        `[${label}] ${books.acknowledged.size} orders placed (201), ${audit.orders.length} listed: ${audit.counts.completed} completed, ` +
          `${audit.counts.rejected} rejected ${JSON.stringify(audit.counts.reasons)}, ${audit.counts.pending} pending; ` +
          `refused ${JSON.stringify(books.refused)}; all final after ${finalMs ?? "?"} ms; ${audit.violations.length} violations found by the audit; ` +
          `${Math.round((Date.now() - t0) / 1000)} s in all`,
      );
      // Background work of the modules (outbox relays): who led before and after the kill, if the relays say.
      const leads = (p: ShopProcess) => p.logs.filter((l) => l.includes('"outbox relay: leading"')).length;
      console.log(
        `[${label}] "outbox relay: leading" lines: wallet ${leads(wallet1)} (killed) / ${leads(wallet2)}, storage ${leads(storage1)} (killed) / ${leads(storage2)}`,
      );
      if (audit.violations.length > 0) {
        for (const v of audit.violations.slice(0, 20)) console.log(`[${label}] violation: ${v}`);
        await printTimelines(urls.registry, audit.violations, label);
      }
      expect(finalMs).not.toBeNull();
      expect(books.stormErrors).toEqual({ count: 0, first: [] });
      expect({ violations: audit.violations.length, first: audit.violations.slice(0, 20) }).toEqual({ violations: 0, first: [] });
      expect(audit.counts.pending).toBe(0);
      expect([wallet1, storage1].map((p) => p.proc.signalCode)).toEqual(["SIGKILL", "SIGKILL"]);
    },
    TEST_TIMEOUT_MS,
  );
});

/** A storm over `urls` for `users`. */
function storm(urls: ShopUrls, books: Books, users: number[], products: number[], label: string): Storm {
  return startStorm(urls, books, {
    users,
    products,
    clients: CLIENTS,
    thinkMs: THINK_MS,
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
    expected: (kind) => REFUSALS_EXPECTED.has(kind),
    label,
  });
}

/** Waits until the storm acknowledged `n` more orders than `from` (or ran out of orders to place). */
async function waitPlaced(s: Storm, from: number, n: number, what: string): Promise<void> {
  let out = false;
  void s.finished.then(() => (out = true));
  await eventually(() => s.placed >= from + n || out, LOAD_TIMEOUT_MS, 50).catch(() => {
    throw new Error(`${what}: the storm placed ${s.placed - from} orders of ${n} within ${LOAD_TIMEOUT_MS} ms`);
  });
}

/** GETs each path from every base URL and expects the same status and body from each; returns how many paths. */
async function sameAnswers(bases: string[], paths: string[]): Promise<number> {
  for (const path of paths) {
    const answers = await Promise.all(
      bases.map(async (base) => {
        const res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
        return { path, status: res.status, body: (await res.json()) as unknown };
      }),
    );
    expect(answers[0]?.status).toBe(200);
    for (const a of answers.slice(1)) expect(a).toEqual(answers[0] as typeof a);
  }
  return paths.length;
}

/** Rejects as soon as one of `procs` exits. */
function firstExit(procs: ShopProcess[]): Promise<never> {
  return Promise.race(
    procs.map((p) =>
      p.proc.exited.then((code) => {
        throw new Error(`a service exited with ${code}:\n${p.logs.slice(-20).join("\n")}`);
      }),
    ),
  );
}
