/** The shop under test, whatever its topology: base URLs plus a way to put raw records on the bus. */
import { join } from "node:path";
import postgres from "postgres";
import { type Shop, startShop } from "../../src/app/shop";
import { SIGNATURE_HEADER, signRecord } from "../../src/bus/signing";
import { loadSettings } from "../../src/config";
import type { Topics } from "../../src/contracts/topics";
import { createLogger } from "../../src/log";
import { TEST_ADMIN_TOKEN } from "./http";

/** Where the fixture config (test catalogue, no seeded wallets) lives. */
export const FIXTURE_CONFIG = join(import.meta.dir, "../fixtures/config");

/** What a black-box suite needs. */
export interface ShopTarget {
  urls: { registry: string; wallet: string; storage: string };
  topics: Topics;
  /**
   * Puts a raw record on a topic, signed with the shop's BUS_SIGNING_KEY as the shop's own
   * producers sign theirs: a stray or replayed record of a legitimate producer.
   */
  publish(topic: string, key: string, value: string): Promise<void>;
  /** Puts a raw record on a topic with exactly `headers` (by default none, so no signature): a forgery by someone without the key. */
  publishUnsigned(topic: string, key: string, value: string, headers?: Record<string, string>): Promise<void>;
  stop(): Promise<void>;
}

/** BUS_SIGNING_KEY of every shop the tests start (testEnv, processEnv, split shop); not a secret. */
export const TEST_BUS_SIGNING_KEY = "test-bus-signing-key-0123456789abcdef";

/** Headers of a record signed with `signingKey` (none when it is unset, as the shop's relay does). */
export function signedHeaders(signingKey: string | undefined, topic: string, key: string, value: string): Record<string, string> {
  return signingKey ? { [SIGNATURE_HEADER]: signRecord(signingKey, { topic, key, value }) } : {};
}

/** Default topic names, as in the fixture config. */
export const TOPICS: Topics = { new_orders: "new_orders", rejected_orders: "rejected_orders", success: "success_topics" };

/** Environment for a test shop: fixture config, free ports, quiet logs. */
export function testEnv(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    CONFIG_DIR: FIXTURE_CONFIG,
    DATA_DIR: ":memory:",
    HOST: "127.0.0.1",
    REGISTRY_PORT: "0",
    WALLET_PORT: "0",
    STORAGE_PORT: "0",
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "error",
    ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    BUS_SIGNING_KEY: TEST_BUS_SIGNING_KEY,
    ...extra,
  };
}

/** Environment for a shop child process: fixture config, loopback, free ports, info logs (the harness reads the "listening" lines). */
export function processEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    CONFIG_DIR: FIXTURE_CONFIG,
    HOST: "127.0.0.1",
    REGISTRY_PORT: "0",
    WALLET_PORT: "0",
    STORAGE_PORT: "0",
    LOG_LEVEL: "info",
    ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    BUS_SIGNING_KEY: TEST_BUS_SIGNING_KEY,
    ...extra,
  };
}

/** Starts all three modules in this process. */
export async function startInProcess(extra: Record<string, string | undefined> = {}): Promise<ShopTarget & { shop: Shop }> {
  const env = testEnv(extra);
  const settings = loadSettings(env);
  const shop = await startShop(settings, env, createLogger(settings.LOG_LEVEL));
  // Tests act at once: wait until the bus runs and every consumer group joined.
  await shop.ready.catch(async (err) => {
    await shop.stop();
    throw err;
  });
  const { registry, wallet, storage } = shop.urls;
  return {
    shop,
    urls: { registry: registry ?? "", wallet: wallet ?? "", storage: storage ?? "" },
    topics: TOPICS,
    publish: (topic, key, value) =>
      shop.bus.publish([{ topic, key, value, headers: signedHeaders(settings.BUS_SIGNING_KEY, topic, key, value) }]),
    publishUnsigned: (topic, key, value, headers = {}) => shop.bus.publish([{ topic, key, value, headers }]),
    stop: () => shop.stop(),
  };
}

/** Creates a fresh database in a cluster and returns its URL. */
export async function createDatabase(clusterUrl: string): Promise<string> {
  const name = `shop_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const admin = postgres(clusterUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(clusterUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
