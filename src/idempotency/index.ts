/**
 * `Idempotency-Key`, the one door modules use (dependency-cruiser's
 * modules-idempotency-through-its-door): the key store a module keeps in its own schema
 * (store.ts: claim, answer, replay lookup, pruning) and its HTTP side (http.ts: the header's
 * schema, `Idempotent-Replayed`, the documented 422, the replay of a stored answer).
 */

export { idempotencyKeyHeaders, KEY_REUSED, replay, replayedHeader, replayIfAnswered } from "./http";
export {
  AlreadyAnswered,
  answerOnce,
  claimKey,
  findAnswer,
  hashRequest,
  IDEMPOTENCY_ERRORS,
  IDEMPOTENCY_HEADER,
  IdempotencyKeyRetentionHours,
  type IdempotencyKeysTable,
  idempotencyKeyPruneJob,
  idempotencyKeysTable,
  type KeyedRequest,
  keyedRequest,
  recordAnswer,
  type StoredAnswer,
} from "./store";
