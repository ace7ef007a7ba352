/** Signed bus records: what a signature covers, which keys verify it, the settings that choose them. */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyFlags, ConfigError, loadSettings } from "../config";
import type { Logger } from "../log";
import type { BusRecord } from "./bus";
import { createRecordSigner, recordSigning, SIGNATURE_HEADER, signRecord } from "./signing";

const KEY = "k".repeat(32);
const OLD = "o".repeat(40);
const OTHER = "x".repeat(32);

const record = (over: Partial<BusRecord> = {}): BusRecord => ({
  topic: "new_orders",
  key: "2f1c6f0e-0000-4000-8000-000000000001",
  value: '{"id":"m","type":"OrderCreated"}',
  headers: { "message-id": "m", "message-type": "OrderCreated" },
  ...over,
});
const signed = (r: BusRecord, key = KEY): BusRecord => ({ ...r, headers: { ...r.headers, [SIGNATURE_HEADER]: signRecord(key, r) } });

describe("record signatures", () => {
  const signer = createRecordSigner(KEY);

  test("a signature is base64url HMAC-SHA256, the same for the same record, and verifies", () => {
    const r = record();
    const sig = signer.sign(r);
    expect(sig).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(sig).toBe(signRecord(KEY, r));
    expect(signer.verify(signed(r))).toBe(true);
    // Other headers are not covered: the envelope carries the message id and type.
    expect(signer.verify({ ...signed(r), headers: { ...signed(r).headers, "message-type": "x", extra: "y" } })).toBe(true);
  });

  test("a missing, empty, malformed or foreign signature does not verify", () => {
    const r = record();
    expect(signer.verify(r)).toBe(false);
    for (const bad of [
      "",
      "abc",
      `${signer.sign(r)}=`,
      signer.sign(r).toUpperCase(),
      Buffer.from(signer.sign(r), "base64url").toString("hex"),
    ]) {
      expect(signer.verify({ ...r, headers: { ...r.headers, [SIGNATURE_HEADER]: bad } })).toBe(false);
    }
    expect(signer.verify(signed(r, OTHER))).toBe(false);
  });

  test("the value, the topic and the key are covered: a signed record moved or changed does not verify", () => {
    const s = signed(record());
    expect(signer.verify({ ...s, value: `${s.value} ` })).toBe(false);
    expect(signer.verify({ ...s, topic: "rejected_orders" })).toBe(false);
    expect(signer.verify({ ...s, key: "another-order" })).toBe(false);
    // Fields cannot trade characters across their boundaries.
    const a = { topic: "t", key: "a\nb", value: "c" };
    const b = { topic: "t", key: "a", value: "b\nc" };
    expect(signRecord(KEY, a)).not.toBe(signRecord(KEY, b));
    expect(signRecord(KEY, { topic: "t\n", key: "", value: "" })).not.toBe(signRecord(KEY, { topic: "t", key: "\n", value: "" }));
  });

  test("an empty value (a tombstone) can be signed like any other", () => {
    const r = record({ value: "" });
    expect(signer.verify(signed(r))).toBe(true);
    expect(signer.verify(signed(record({ value: "", key: "other" }), KEY))).toBe(true);
    expect(signer.verify({ ...signed(r), key: "other" })).toBe(false);
  });

  test("the previous key verifies (never signs) while it is configured", () => {
    const rotating = createRecordSigner(KEY, OLD);
    const r = record();
    expect(rotating.verify(signed(r, OLD))).toBe(true);
    expect(rotating.verify(signed(r, KEY))).toBe(true);
    expect(rotating.verify(signed(r, OTHER))).toBe(false);
    expect(rotating.sign(r)).toBe(signRecord(KEY, r));
    // Once it is removed, what it signed is refused.
    expect(createRecordSigner(KEY).verify(signed(r, OLD))).toBe(false);
  });
});

describe("BUS_SIGNING_KEY and BUS_SIGNING_KEY_PREVIOUS", () => {
  const settingError = (env: Record<string, string>) => {
    try {
      loadSettings(env);
    } catch (err) {
      if (err instanceof ConfigError) return err.setting;
      throw err;
    }
    return null;
  };

  test("optional; empty is unset; at least 32 characters; the previous key needs the current one", () => {
    expect(loadSettings({}).BUS_SIGNING_KEY).toBeUndefined();
    expect(loadSettings({ BUS_SIGNING_KEY: "", BUS_SIGNING_KEY_PREVIOUS: "" })).toMatchObject({
      BUS_SIGNING_KEY: undefined,
      BUS_SIGNING_KEY_PREVIOUS: undefined,
    });
    expect(loadSettings({ BUS_SIGNING_KEY: KEY, BUS_SIGNING_KEY_PREVIOUS: OLD })).toMatchObject({
      BUS_SIGNING_KEY: KEY,
      BUS_SIGNING_KEY_PREVIOUS: OLD,
    });
    expect(settingError({ BUS_SIGNING_KEY: "short" })).toBe("BUS_SIGNING_KEY");
    expect(settingError({ BUS_SIGNING_KEY: "k".repeat(31) })).toBe("BUS_SIGNING_KEY");
    expect(settingError({ BUS_SIGNING_KEY: KEY, BUS_SIGNING_KEY_PREVIOUS: "short" })).toBe("BUS_SIGNING_KEY_PREVIOUS");
    expect(settingError({ BUS_SIGNING_KEY_PREVIOUS: OLD })).toBe("BUS_SIGNING_KEY_PREVIOUS");
  });

  test("Kafka without a key is refused, naming the setting and how to set one, unless BUS_INSECURE_UNSIGNED_RECORDS=true says so", () => {
    const kafka = { BUS: "kafka" };
    expect(settingError(kafka)).toBe("BUS_SIGNING_KEY");
    expect(settingError({ ...kafka, BUS_SIGNING_KEY: "" })).toBe("BUS_SIGNING_KEY");
    expect(settingError({ ...kafka, BUS_INSECURE_UNSIGNED_RECORDS: "false" })).toBe("BUS_SIGNING_KEY");
    let message = "";
    try {
      loadSettings(applyFlags(["--bus", "kafka"], {}));
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain("BUS_SIGNING_KEY: required with --bus kafka");
    expect(message).toContain("openssl rand -base64 48");
    expect(message).toContain("BUS_SIGNING_KEY_FILE");
    expect(message).toContain("BUS_INSECURE_UNSIGNED_RECORDS=true");
    expect(loadSettings({ ...kafka, BUS_SIGNING_KEY: KEY })).toMatchObject({ BUS_SIGNING_KEY: KEY, BUS_INSECURE_UNSIGNED_RECORDS: false });
    const insecure = loadSettings({ ...kafka, BUS_INSECURE_UNSIGNED_RECORDS: "true" });
    expect([insecure.BUS_SIGNING_KEY, insecure.BUS_INSECURE_UNSIGNED_RECORDS]).toEqual([undefined, true]);
    // Only the exact word; and never together with a key (which of the two is meant?).
    expect(settingError({ ...kafka, BUS_INSECURE_UNSIGNED_RECORDS: "yes" })).toBe("BUS_INSECURE_UNSIGNED_RECORDS");
    expect(settingError({ ...kafka, BUS_SIGNING_KEY: KEY, BUS_INSECURE_UNSIGNED_RECORDS: "true" })).toBe("BUS_INSECURE_UNSIGNED_RECORDS");
    // The in-process bus has no other writer: no key needed.
    expect(loadSettings({}).BUS_SIGNING_KEY).toBeUndefined();
  });

  test("BUS_SIGNING_KEY_FILE: the key from a file (whitespace around it dropped); not with BUS_SIGNING_KEY; a short or missing file is named", () => {
    const dir = mkdtempSync(join(tmpdir(), "shop-key-"));
    try {
      const file = join(dir, "bus-signing-key");
      writeFileSync(file, `${KEY}\n`);
      expect(loadSettings({ BUS: "kafka", BUS_SIGNING_KEY_FILE: file })).toMatchObject({ BUS_SIGNING_KEY: KEY });
      expect(settingError({ BUS_SIGNING_KEY_FILE: file, BUS_SIGNING_KEY: KEY })).toBe("BUS_SIGNING_KEY_FILE");
      expect(settingError({ BUS_SIGNING_KEY_FILE: join(dir, "absent") })).toBe("BUS_SIGNING_KEY_FILE");
      writeFileSync(file, "short\n");
      expect(settingError({ BUS_SIGNING_KEY_FILE: file })).toBe(`BUS_SIGNING_KEY_FILE (${file})`);
      // The key is never shown, even from a file.
      expect(() => loadSettings({ BUS_SIGNING_KEY_FILE: file })).toThrow("(hidden, 5 characters)");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("no key: null; in Kafka mode (BUS_INSECURE_UNSIGNED_RECORDS) a warning on every start, with the in-process bus a debug line; set: a signer, nothing logged", () => {
    const lines: string[] = [];
    const log: Logger = {
      debug: (m) => lines.push(`debug ${m}`),
      info: (m) => lines.push(`info ${m}`),
      warn: (m) => lines.push(`warn ${m}`),
      error: (m) => lines.push(`error ${m}`),
      child: () => log,
    };
    expect(recordSigning(loadSettings({}), log)).toBeNull();
    expect(lines).toEqual([expect.stringMatching(/^debug in-process bus: records are not signed/)]);
    lines.length = 0;
    expect(recordSigning(loadSettings({ BUS: "kafka", BUS_INSECURE_UNSIGNED_RECORDS: "true" }), log)).toBeNull();
    expect(lines).toEqual([
      expect.stringMatching(/^warn BUS_INSECURE_UNSIGNED_RECORDS=true: bus records are not signed .* can forge them/),
    ]);
    lines.length = 0;
    const signer = recordSigning(loadSettings({ BUS_SIGNING_KEY: KEY, BUS_SIGNING_KEY_PREVIOUS: OLD }), log);
    expect(signer?.verify(signed(record(), OLD))).toBe(true);
    expect(lines).toEqual([]);
  });
});
