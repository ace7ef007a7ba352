/**
 * Signed bus records (docs/security.md, "Signed records"). With BUS_SIGNING_KEY set, the outbox relay puts a
 * `signature` header on every record it publishes and every consumer sets aside, as a dead letter
 * with the error "bad signature", a record whose signature is missing or wrong: only a holder of
 * the key can put a record on the bus that a module acts on.
 *
 * The signature is base64url(HMAC-SHA256(key, "shop-bus-v1\n" + JSON.stringify([topic, key]) +
 * "\n" + value)): it binds the record's topic and key as well as its value, so a signed record
 * replayed onto another topic or under another key is refused too (the JSON line keeps the
 * fields apart whatever they contain). Other headers are not covered: message-id and
 * message-type only repeat what the envelope in the value says.
 *
 * Rotation: BUS_SIGNING_KEY_PREVIOUS is accepted for verification only, so that records signed
 * before a rolling restart are still applied after it; remove it once those are consumed.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import type { Settings } from "../config";
import type { Logger } from "../log";
import type { BusRecord } from "./bus";

/** The record header carrying the signature. */
export const SIGNATURE_HEADER = "signature";

/** The dead letter error of a record whose signature is missing or wrong. */
export const BAD_SIGNATURE = "bad signature";

/** What a signature covers. */
export type SignedPart = Pick<BusRecord, "topic" | "key" | "value">;

/** Signs records with the current key; verifies them against the current or the previous key. */
export interface RecordSigner {
  /** The `signature` header value for `record`. */
  sign(record: SignedPart): string;
  /** Whether `record` carries a signature made by the current or the previous key. */
  verify(record: BusRecord): boolean;
}

/** The signature of `record` under `key` (what the relay sends; tests sign their records with it). */
export function signRecord(key: string, record: SignedPart): string {
  return createHmac("sha256", key)
    .update(`shop-bus-v1\n${JSON.stringify([record.topic, record.key])}\n`, "utf8")
    .update(record.value, "utf8")
    .digest("base64url");
}

/** A signer for `key`, also accepting `previous` when given. */
export function createRecordSigner(key: string, previous?: string): RecordSigner {
  const keys = previous ? [key, previous] : [key];
  return {
    sign: (record) => signRecord(key, record),
    verify(record) {
      const presented = record.headers[SIGNATURE_HEADER];
      if (typeof presented !== "string") return false;
      const given = Buffer.from(presented, "utf8");
      let ok = false;
      for (const k of keys) {
        const expected = Buffer.from(signRecord(k, record), "utf8");
        // Every key is tried (no early exit); only the length, which is public, is compared first.
        if (given.length === expected.length && timingSafeEqual(given, expected)) ok = true;
      }
      return ok;
    },
  };
}

/**
 * The process's signer from its settings, or null when records are not signed: the in-process bus
 * (no other writer; logged at debug), or Kafka with BUS_INSECURE_UNSIGNED_RECORDS (loadSettings
 * refuses Kafka without a key otherwise; logged at warn on every start).
 */
export function recordSigning(
  settings: Pick<Settings, "BUS" | "BUS_SIGNING_KEY" | "BUS_SIGNING_KEY_PREVIOUS" | "BUS_INSECURE_UNSIGNED_RECORDS">,
  log: Logger,
): RecordSigner | null {
  if (settings.BUS_SIGNING_KEY) return createRecordSigner(settings.BUS_SIGNING_KEY, settings.BUS_SIGNING_KEY_PREVIOUS);
  if (settings.BUS === "kafka") {
    log.warn(
      "BUS_INSECURE_UNSIGNED_RECORDS=true: bus records are not signed and signatures are not checked; anyone who can write to the topics can forge them (set BUS_SIGNING_KEY)",
    );
  } else {
    log.debug("in-process bus: records are not signed (nothing else writes to it)");
  }
  return null;
}
