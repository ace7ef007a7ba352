/**
 * A fetched batch handed to the handler in chunks, each chunk's offset resolved only after the
 * handler applied it and committed with the others a moment later (offset-commits.ts); a member
 * that lost its group membership rejoins instead of crashing.
 */
import type { EachBatchPayload, KafkaMessage } from "kafkajs";
import { causeChain } from "../../errors";
import type { Logger } from "../../log";
import { type BusRecord, MAX_BATCH, retryDelayMs } from "../bus";
import type { Lifecycle } from "./lifecycle";
import { type Member, setError } from "./member";

/** Hands a fetched batch to the handler in chunks; each chunk's offset is committed after it is applied. */
export async function deliverBatch(
  p: EachBatchPayload,
  member: Member,
  { lifecycle, log }: { lifecycle: Lifecycle; log: Logger },
): Promise<void> {
  const { messages } = p.batch;
  let i = 0;
  let attempt = 0;
  while (i < messages.length) {
    // Not committed: what is left is fetched again by whoever owns the partition next.
    if (lifecycle.stopping || !p.isRunning() || p.isStale()) return;
    const chunk = messages.slice(i, i + MAX_BATCH);
    const done = await applyChunk(p, member, chunk, log);
    if (done > 0) {
      p.resolveOffset((chunk[done - 1] as KafkaMessage).offset);
      i += done;
      member.commits.later(p);
      // Stopping: commit now, before the member leaves its group (the rest is not applied).
      if (lifecycle.stopping) await commitNow(member);
    }
    if (done < chunk.length) {
      attempt += 1;
      if (lifecycle.stopping) return;
      await lifecycle.sleep(retryDelayMs(attempt));
    } else {
      attempt = 0;
    }
    await p.heartbeat().catch(rejoinOnLostMembership);
  }
}

/** Runs the handler on a chunk: how many records, from the first, it applied (0 when it threw). */
async function applyChunk(p: EachBatchPayload, { sub, state }: Member, chunk: KafkaMessage[], log: Logger): Promise<number> {
  const { topic, partition } = p.batch;
  try {
    return Math.max(0, Math.min(chunk.length, await sub.handler(chunk.map((m) => toRecord(topic, m)))));
  } catch (err) {
    log.warn("handler failed; will retry", { topic, partition, offset: chunk[0]?.offset, err });
    setError(state, err);
    return 0;
  }
}

/** Commits the member's resolved offsets now; a lost membership makes kafkajs rejoin (see rejoinOnLostMembership). */
async function commitNow(member: Member): Promise<void> {
  // Through the batch's own commit (the consumer-level one wraps a lost membership in a
  // non-retriable error that kafkajs gives up on).
  await member.commits.now().catch((err: unknown) => {
    rejoinOnLostMembership(err);
    throw err;
  });
}

/** A fetched Kafka message as the bus's record: key, value and headers as strings. */
function toRecord(topic: string, m: KafkaMessage): BusRecord {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.headers ?? {})) {
    if (v !== undefined) headers[k] = Array.isArray(v) ? v.map(String).join(",") : v.toString();
  }
  return { topic, key: m.key?.toString() ?? "", value: m.value?.toString() ?? "", headers };
}

/** Kafka error types that mean this member no longer holds its partitions: rejoin the group. */
const MEMBERSHIP_LOST = new Set(["UNKNOWN_MEMBER_ID", "ILLEGAL_GENERATION", "REBALANCE_IN_PROGRESS", "NOT_COORDINATOR_FOR_GROUP"]);

/**
 * After the broker dropped this member (a broker outage, or a handler retrying past the session
 * timeout), a commit or heartbeat fails with one of MEMBERSHIP_LOST. Rethrown as kafkajs's own
 * protocol error (not wrapped), it makes kafkajs's runner rejoin the group instead of crashing;
 * what was applied but not committed is delivered again and dropped by the inbox. Returns for
 * any other error (the caller decides).
 */
function rejoinOnLostMembership(err: unknown): void {
  const root = causeChain(err).findLast((c) => c instanceof Error);
  const type = (root as { type?: unknown } | undefined)?.type;
  if (typeof type === "string" && MEMBERSHIP_LOST.has(type)) throw root;
}
