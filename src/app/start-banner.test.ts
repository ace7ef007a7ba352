import { describe, expect, test } from "bun:test";
import { loadSettings } from "../config";
import { describeDatabase, formatBanner, startFacts } from "./start-banner";

describe("start banner", () => {
  test("the database as a person reads it, never with the password", () => {
    expect(describeDatabase({ driver: "postgres", url: "postgres://shop:s3cret@db.internal:5432/shop", poolSize: 10 })).toBe(
      'PostgreSQL at db.internal:5432 (database "shop", user "shop")',
    );
    expect(describeDatabase({ driver: "pglite", dataDir: null })).toBe("PGlite in memory (nothing kept)");
    expect(describeDatabase({ driver: "pglite", dataDir: "/srv/shop/data" })).toBe(
      "PGlite in /srv/shop/data (every commit fsynced before its answer)",
    );
    expect(describeDatabase({ driver: "pglite", dataDir: "/srv/shop/data", unsafeNoFsync: true })).toBe(
      "PGlite in /srv/shop/data, NOT durable (PGLITE_UNSAFE_NO_FSYNC=true): a power cut can lose answered orders",
    );
  });

  test("one screen: mode, database, bus, each module's URL and Swagger UI, the live page, ready in N ms", () => {
    const settings = loadSettings({});
    const urls = { registry: "http://127.0.0.1:8000", wallet: "http://127.0.0.1:8001", storage: "http://127.0.0.1:8002" };
    const facts = startFacts(settings, { driver: "pglite", dataDir: "/srv/shop/data" }, urls, 1234.4);
    const banner = formatBanner(facts);
    for (const text of [
      "ready in 1234 ms",
      "one process: registry, wallet, storage",
      "PGlite in /srv/shop/data",
      "in memory",
      `config    ${process.cwd()}/config`,
      "http://localhost:8001   swagger http://localhost:8001/swagger/",
      "live page http://localhost:8000/",
      // Where the generated admin token is (never the token itself: the ready line is logged too).
      'admin     Authorization: Bearer <token>, the token generated at start, in the log line "admin token (generated',
      // A ready-to-paste audit of this shop (its own ports, not :8000-8002 whatever they are), the generated token given by hand.
      "audit     bun run audit --registry-url http://localhost:8000 --wallet-url http://localhost:8001 --storage-url http://localhost:8002 --token <token>",
    ]) {
      expect(banner).toContain(text);
    }
    expect(banner.split("\n").length).toBeLessThan(24);
    const chosen = startFacts(
      loadSettings({ ADMIN_TOKEN: "a-chosen-admin-token-123" }),
      { driver: "pglite", dataDir: "/srv/shop/data" },
      urls,
      1,
    );
    expect(chosen.admin_token).toBe("ADMIN_TOKEN");
    expect(formatBanner(chosen)).toContain("the token from ADMIN_TOKEN");
    expect(chosen.audit).toBe(
      "bun run audit --registry-url http://localhost:8000 --wallet-url http://localhost:8001 --storage-url http://localhost:8002",
    );
    expect(JSON.stringify(chosen)).not.toContain("a-chosen-admin-token-123");
  });

  test("a service of the split deployment: its modules only, Kafka's brokers, no live page without registry", () => {
    const settings = loadSettings({
      MODULES: "wallet",
      BUS: "kafka",
      KAFKA_BROKERS: "k1:9092,k2:9092",
      HOST: "10.0.0.5",
      BUS_SIGNING_KEY: "k".repeat(32),
    });
    const facts = startFacts(
      settings,
      { driver: "postgres", url: "postgres://u:p@db/shop", poolSize: 10 },
      { wallet: "http://127.0.0.1:8001" },
      10,
    );
    expect(facts).toMatchObject({
      mode: "service: wallet only",
      bus: "Kafka at k1:9092, k2:9092 (records signed)",
      urls: { wallet: "http://10.0.0.5:8001" },
    });
    const unsigned = loadSettings({ MODULES: "wallet", BUS: "kafka", BUS_INSECURE_UNSIGNED_RECORDS: "true" });
    expect(startFacts(unsigned, { driver: "postgres", url: "postgres://u:p@db/shop", poolSize: 10 }, {}, 10).bus).toBe(
      "Kafka at localhost:9092 (records NOT signed: BUS_INSECURE_UNSIGNED_RECORDS=true)",
    );
    expect(facts.live_page).toBeUndefined();
    // One module here: an audit needs the others' URLs, which this process does not know.
    expect(facts.audit).toBeUndefined();
    expect(JSON.stringify(facts)).not.toContain(":p@");
  });
});
