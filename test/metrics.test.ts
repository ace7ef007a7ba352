/**
 * /metrics through the real servers (one process): the Prometheus text parses strictly (every
 * family has HELP and TYPE, once), the families the operators' dashboard reads are there with
 * sane values after a completed and a rejected order, and every metric the Grafana dashboard in
 * deploy/ queries is exported by some service.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { type Database, openDatabase } from "../src/db/database";
import { createLogger } from "../src/log";
import { eventually } from "./support/eventually";
import { adminHeaders, call, getJson } from "./support/http";
import { type PostgresCluster, startPostgresCluster } from "./support/postgres-cluster";
import { createDatabase, type ShopTarget, startInProcess } from "./support/shop-target";

type Service = keyof ShopTarget["urls"];
const SERVICES: Service[] = ["registry", "wallet", "storage"];

/** One sample line. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A parsed exposition: families by name (HELP, TYPE) and every sample. */
interface Exposition {
  families: Map<string, { help: string; type: string }>;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const SUFFIXES: Record<string, string[]> = { histogram: ["_bucket", "_sum", "_count"], summary: ["_sum", "_count", ""] };

/** Parses the Prometheus text format strictly: throws on anything a scraper could misread. */
function parseExposition(text: string): Exposition {
  const families = new Map<string, { help: string; type: string }>();
  const helps = new Map<string, string>();
  const samples: Sample[] = [];
  const series = new Set<string>();
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const meta = line.match(/^# (HELP|TYPE) (\S+) (.*)$/);
    if (meta) {
      const [, kind, name = "", rest = ""] = meta;
      if (!NAME.test(name)) throw new Error(`bad family name: ${line}`);
      if (kind === "HELP") {
        if (helps.has(name)) throw new Error(`HELP twice for ${name}`);
        if (rest.trim() === "") throw new Error(`empty HELP for ${name}`);
        helps.set(name, rest);
      } else {
        if (families.has(name)) throw new Error(`TYPE twice for ${name}`);
        if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(rest)) throw new Error(`bad TYPE: ${line}`);
        if (!helps.has(name)) throw new Error(`TYPE before HELP for ${name}`);
        families.set(name, { help: helps.get(name) ?? "", type: rest });
      }
      continue;
    }
    if (line.startsWith("#")) throw new Error(`unexpected comment: ${line}`);
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/);
    if (!m) throw new Error(`bad sample line: ${line}`);
    const [, name = "", body = "", raw = ""] = m;
    const labels: Record<string, string> = {};
    const rest = body.replaceAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g, (_, k: string, v: string) => {
      if (k in labels) throw new Error(`label ${k} twice: ${line}`);
      labels[k] = v.replaceAll(/\\(.)/g, (_e, c: string) => (c === "n" ? "\n" : c));
      return "";
    });
    if (rest !== "") throw new Error(`bad labels: ${line}`);
    const value = raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw);
    if (Number.isNaN(value) && raw !== "NaN") throw new Error(`bad value: ${line}`);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (series.has(key)) throw new Error(`series twice: ${line}`);
    series.add(key);
    samples.push({ name, labels, value });
  }
  for (const s of samples) if (!familyOf(families, s.name)) throw new Error(`sample without HELP and TYPE: ${s.name}`);
  return { families, samples };
}

/** The family a sample belongs to (histogram samples end in _bucket, _sum or _count). */
function familyOf(families: Exposition["families"], sample: string): string | null {
  if (families.has(sample)) return sample;
  for (const [name, { type }] of families) {
    if ((SUFFIXES[type] ?? []).some((suffix) => sample === `${name}${suffix}`)) return name;
  }
  return null;
}

const scrape = async (service: Service): Promise<Exposition> => {
  const res = await fetch(`${t.urls[service]}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toStartWith("text/plain; version=0.0.4");
  return parseExposition(await res.text());
};

/** Samples of `name` whose labels include `labels`. */
const find = (e: Exposition, name: string, labels: Record<string, string> = {}) =>
  e.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
const sum = (e: Exposition, name: string, labels: Record<string, string> = {}) => find(e, name, labels).reduce((n, s) => n + s.value, 0);
const one = (e: Exposition, name: string, labels: Record<string, string> = {}) => {
  const found = find(e, name, labels);
  if (found.length !== 1) throw new Error(`${name} ${JSON.stringify(labels)}: ${found.length} samples`);
  return (found[0] as Sample).value;
};

let t: ShopTarget;
beforeAll(async () => {
  t = await startInProcess();
}, 120_000);
afterAll(() => t?.stop());

/** Places an order and waits for its final state. */
async function settle(userId: number, productId: number): Promise<{ id: string; status: string; reason: string | null }> {
  const placed = await call(t.urls.registry, "POST", "/orders", { user_id: userId, items: [{ product_id: productId, quantity: 1 }] });
  expect(placed.status).toBe(201);
  return eventually(async () => {
    const o = await getJson(t.urls.registry, `/orders/${placed.body.id}`);
    return o.status === "pending" ? false : o;
  }, 60_000);
}

describe("/metrics after a completed and a rejected order", () => {
  let completed: { id: string };
  let rejected: { id: string; reason: string | null };
  beforeAll(async () => {
    expect((await call(t.urls.wallet, "POST", "/wallets/601/deposits", { amount_cents: 5000 }, adminHeaders)).status).toBe(201);
    expect((await call(t.urls.storage, "POST", "/stock/61/receipts", { quantity: 3 }, adminHeaders)).status).toBe(201);
    const ok = await settle(601, 61);
    expect(ok.status).toBe("completed");
    completed = ok;
    // User 602 has no wallet: wallet rejects, registry decides, storage releases.
    const no = await settle(602, 61);
    expect(no.status).toBe("rejected");
    rejected = no;
    // Compensations finish after the decision: wait until nothing is left to publish anywhere.
    await eventually(async () => {
      for (const s of SERVICES) if (sum(await scrape(s), "shop_outbox_pending") !== 0) return false;
      return true;
    }, 60_000);
  }, 120_000);

  test("every service's output parses strictly, each family once, the process's metrics once", async () => {
    for (const service of SERVICES) {
      const e = await scrape(service);
      for (const name of ["process_resident_memory_bytes", "nodejs_heap_size_used_bytes", "nodejs_eventloop_lag_seconds"]) {
        expect(e.families.get(name)?.type).toBe("gauge");
        expect(find(e, name)).toHaveLength(1);
      }
      expect(one(e, "process_resident_memory_bytes")).toBeGreaterThan(1024 * 1024);
      expect(one(e, "nodejs_heap_size_used_bytes")).toBeGreaterThan(0);
      // Collectors that report nothing true under Bun are left out.
      expect(e.families.has("nodejs_active_handles_total")).toBe(false);
      expect(e.families.has("process_heap_bytes")).toBe(false);
    }
  });

  test("the event-loop lag is measured: never negative, and not 0 every time", async () => {
    await eventually(
      async () => {
        const e = await scrape("registry");
        // No lag outlasts the process that measured it (the shop runs in this one): a bound no machine speed moves.
        const lag = one(e, "nodejs_eventloop_lag_seconds");
        expect(lag).toBeGreaterThanOrEqual(0);
        expect(lag).toBeLessThanOrEqual(process.uptime());
        const p99 = one(e, "nodejs_eventloop_lag_p99_seconds");
        expect(p99).toBeGreaterThanOrEqual(0);
        expect(p99).toBeLessThanOrEqual(process.uptime());
        return lag > 0;
      },
      30_000,
      300,
    );
  });

  test("HTTP requests by method, route pattern and status: a counter and a latency histogram", async () => {
    await call(t.urls.registry, "GET", `/orders/${completed.id}`);
    await call(t.urls.registry, "GET", "/no/such/path/4711");
    const e = await scrape("registry");
    expect(e.families.get("shop_http_requests_total")?.type).toBe("counter");
    expect(e.families.get("shop_http_request_duration_seconds")?.type).toBe("histogram");
    const posted = { method: "POST", route: "/orders", status: "201" };
    expect(one(e, "shop_http_requests_total", posted)).toBeGreaterThanOrEqual(2);
    const buckets = find(e, "shop_http_request_duration_seconds_bucket", posted);
    expect(buckets.length).toBeGreaterThan(5);
    expect(buckets.find((b) => b.labels.le === "+Inf")?.value).toBe(one(e, "shop_http_request_duration_seconds_count", posted));
    for (let i = 1; i < buckets.length; i++) expect((buckets[i] as Sample).value).toBeGreaterThanOrEqual((buckets[i - 1] as Sample).value);
    expect(one(e, "shop_http_request_duration_seconds_count", posted)).toBe(one(e, "shop_http_requests_total", posted));
    expect(one(e, "shop_http_request_duration_seconds_sum", posted)).toBeGreaterThan(0);
    expect(one(e, "shop_http_requests_total", { method: "GET", route: "/orders/{id}", status: "200" })).toBeGreaterThanOrEqual(1);
    // A path no route matched is one label value, never the raw path.
    expect(one(e, "shop_http_requests_total", { method: "GET", route: "unmatched", status: "404" })).toBeGreaterThanOrEqual(1);
    const routes = new Set(find(e, "shop_http_requests_total").map((s) => s.labels.route));
    for (const r of routes) expect(r === "unmatched" || !/\d{3,}|no\/such/.test(r ?? "")).toBe(true);
  });

  test("messages consumed, produced and dead-lettered by topic; the outcome counts too", async () => {
    const all = await Promise.all(SERVICES.map(scrape));
    const total = (name: string, labels: Record<string, string>) => all.reduce((n, e) => n + sum(e, name, labels), 0);
    for (const topic of Object.values(t.topics)) {
      expect(total("shop_messages_consumed_by_topic_total", { topic })).toBeGreaterThan(0);
      expect(total("shop_messages_produced_total", { topic })).toBeGreaterThan(0);
    }
    const wallet = all[1] as Exposition;
    expect(one(wallet, "shop_messages_dead_lettered_total", { topic: t.topics.new_orders })).toBe(0);
    expect(one(wallet, "shop_messages_consumed_total", { outcome: "processed" })).toBeGreaterThan(0);
    expect(one(wallet, "shop_messages_consumed_total", { outcome: "dead" })).toBe(0);
    // Registry produced each OrderCreated: one per order placed.
    const registry = all[0] as Exposition;
    expect(one(registry, "shop_messages_produced_total", { topic: t.topics.new_orders })).toBeGreaterThanOrEqual(2);
  });

  test("orders by final state and reason; the saga duration histogram counts every final order", async () => {
    const e = await scrape("registry");
    expect(e.families.get("shop_orders")?.type).toBe("gauge");
    expect(sum(e, "shop_orders", { status: "rejected", reason: rejected.reason ?? "" })).toBeGreaterThanOrEqual(1);
    expect(sum(e, "shop_orders", { status: "completed" })).toBeGreaterThanOrEqual(1);
    expect(e.families.get("shop_saga_duration_seconds")?.type).toBe("histogram");
    for (const status of ["completed", "rejected"]) {
      expect(one(e, "shop_saga_duration_seconds_count", { status })).toBe(sum(e, "shop_orders", { status }));
      expect(one(e, "shop_saga_duration_seconds_sum", { status })).toBeGreaterThan(0);
      expect(one(e, "shop_saga_duration_seconds_bucket", { status, le: "+Inf" })).toBe(sum(e, "shop_orders", { status }));
    }
    expect(sum(e, "shop_saga_duration_seconds_count")).toBe(
      sum(e, "shop_orders", { status: "completed" }) + sum(e, "shop_orders", { status: "rejected" }),
    );
    expect(one(e, "shop_unknown_orders")).toBe(0);
  });

  test("the outbox backlog, its oldest row's age, and the database pool", async () => {
    for (const service of SERVICES) {
      const e = await scrape(service);
      expect(one(e, "shop_outbox_backlog", { state: "pending" })).toBe(0);
      expect(one(e, "shop_outbox_backlog", { state: "in_flight" })).toBe(0);
      expect(one(e, "shop_outbox_oldest_unpublished_seconds")).toBe(0);
      expect(one(e, "shop_db_pool_max")).toBe(1); // PGlite: one connection
      expect(one(e, "shop_db_pool_in_use")).toBeGreaterThanOrEqual(0);
      expect(one(e, "shop_db_pool_in_use")).toBeLessThanOrEqual(1);
      expect(one(e, "shop_db_pool_waiting")).toBeGreaterThanOrEqual(0);
      expect(one(e, "shop_db_transactions_total")).toBeGreaterThan(0);
    }
  });
});

describe("the database pool gauges (Database.pool())", () => {
  let cluster: PostgresCluster | null = null;
  const opened: Database[] = [];
  afterAll(async () => {
    for (const db of opened) await db.close();
    await cluster?.stop();
  }, 60_000);

  /** Starts `n` transactions that hold until released; resolves once `db.pool()` shows them. */
  const hold = async (db: Database, n: number) => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const running = Array.from({ length: n }, () => db.transaction(() => gate));
    return {
      release: async () => {
        release();
        await Promise.all(running);
      },
    };
  };

  test("PGlite: one connection; in use while a call holds the mutex, the others waiting", async () => {
    const db = await openDatabase({ driver: "pglite", dataDir: null }, createLogger("silent"));
    opened.push(db);
    expect(db.pool()).toEqual({ max: 1, inUse: 0, waiting: 0 });
    const held = await hold(db, 3);
    await eventually(() => db.pool().inUse === 1);
    expect(db.pool()).toEqual({ max: 1, inUse: 1, waiting: 2 });
    await held.release();
    expect(db.pool()).toEqual({ max: 1, inUse: 0, waiting: 0 });
  });

  test("PostgreSQL: units of work in flight against the pool size; past it, waiting", async () => {
    cluster = await startPostgresCluster({ name: "metrics" });
    const db = await openDatabase({ driver: "postgres", url: await createDatabase(cluster.url), poolSize: 2 }, createLogger("silent"));
    opened.push(db);
    expect(db.pool()).toEqual({ max: 2, inUse: 0, waiting: 0 });
    const held = await hold(db, 3);
    expect(db.pool()).toEqual({ max: 2, inUse: 2, waiting: 1 });
    await held.release();
    expect(db.pool()).toEqual({ max: 2, inUse: 0, waiting: 0 });
  }, 120_000);
});

describe("the observability profile (deploy/)", () => {
  const path = join(import.meta.dir, "../deploy/grafana/dashboards/saga.json");

  test("Prometheus scrapes every replica of the three services' /metrics (DNS discovery), each with its service label", () => {
    const config = parseYaml(readFileSync(join(import.meta.dir, "../deploy/prometheus/prometheus.yml"), "utf8")) as {
      scrape_configs: {
        metrics_path?: string;
        dns_sd_configs: { names: string[]; type: string; port: number }[];
        relabel_configs: { source_labels: string[]; target_label: string }[];
      }[];
    };
    const targets = config.scrape_configs.flatMap((job) =>
      job.dns_sd_configs.map((c) => `${c.type} ${c.names.join(",")}:${c.port} ${job.metrics_path}`),
    );
    expect(targets.sort()).toEqual(["A registry:8000 /metrics", "A storage:8002 /metrics", "A wallet:8001 /metrics"]);
    for (const job of config.scrape_configs) {
      expect(job.relabel_configs).toContainEqual({ source_labels: ["__meta_dns_name"], target_label: "service" });
    }
  });

  test("parses, and every metric its queries use is exported by some service", async () => {
    const dashboard = JSON.parse(readFileSync(path, "utf8")) as { panels: { title: string; targets?: { expr: string }[] }[] };
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((target) => ({ panel: p.title, expr: target.expr })));
    expect(exprs.length).toBeGreaterThan(10);
    const exported = new Set<string>();
    for (const service of SERVICES) for (const s of (await scrape(service)).samples) exported.add(s.name);
    const missing: string[] = [];
    for (const { panel, expr } of exprs) {
      const names = [...expr.matchAll(/\b(?:shop|process|nodejs)_[a-zA-Z0-9_]+/g)].map((m) => m[0]);
      expect(names.length).toBeGreaterThan(0);
      for (const name of names) if (!exported.has(name)) missing.push(`${panel}: ${name}`);
    }
    expect(missing).toEqual([]);
  });
});
