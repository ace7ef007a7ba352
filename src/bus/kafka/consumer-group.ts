/** The consumer group side of a bus: one member per subscription, started in its group and stopped for good. */
import type { Kafka } from "kafkajs";
import type { Logger } from "../../log";
import type { Subscription } from "../bus";
import { deliverBatch } from "./batch-delivery";
import { followEvents, type GroupMembers, type Member, newConsumerState, setError } from "./member";
import { OffsetCommits } from "./offset-commits";
import type { ConsumerTimings } from "./options";

/** What the members of one bus are created from: its client, partitions and timings, besides the members themselves. */
export interface ConsumerGroups extends GroupMembers {
  kafka: Kafka;
  /** Partitions of the bus's topics, consumed concurrently by each member. */
  partitions: number | undefined;
  timings: ConsumerTimings;
  /** Passed to kafkajs: its workarounds for librdkafka's mock broker (tests only; see KafkaOptions). */
  mockBrokerQuirks: boolean;
}

/** Connects a member for `sub` and subscribes it; returns without waiting for it to join its group. */
export async function startMember(sub: Subscription, groups: ConsumerGroups): Promise<void> {
  const { kafka, lifecycle, members } = groups;
  const { sessionTimeout, heartbeatInterval, rebalanceTimeout, fetchMaxWait } = groups.timings;
  const consumer = kafka.consumer({
    groupId: sub.group,
    sessionTimeout,
    heartbeatInterval,
    rebalanceTimeout,
    // A broker answers a fetch as soon as records arrive; the wait only bounds an idle poll.
    maxWaitTimeInMs: fetchMaxWait,
    retry: { initialRetryTime: 300, maxRetryTime: 10_000, retries: 8 },
    mockBrokerQuirks: groups.mockBrokerQuirks,
  });
  const member: Member = { sub, consumer, state: newConsumerState(sub), commits: new OffsetCommits(sub.group, groups.log), running: null };
  members.push(member);
  followEvents(member, groups);
  await consumer.connect();
  lifecycle.stillStarting();
  await consumer.subscribe({ topics: sub.topics, fromBeginning: true });
  lifecycle.stillStarting();
  // Not awaited: joining waits for the group (up to a session timeout after a kill -9);
  // readiness follows GROUP_JOIN instead. A crash while joining arrives as a CRASH event.
  member.running = runMember(member, groups);
}

/** Runs the member with offsets committed by hand, after the handler; a failure to start is fatal. */
function runMember(member: Member, groups: ConsumerGroups): Promise<void> {
  const { sub, consumer, state } = member;
  const { lifecycle, log } = groups;
  return consumer
    .run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: groups.partitions ?? 3,
      eachBatch: (payload) => deliverBatch(payload, member, groups),
    })
    .catch((err: Error) => {
      if (lifecycle.stopping) return;
      setError(state, err);
      Object.assign(state, { state: "failed", joined: false });
      log.error("consumer failed to start", { group: sub.group, err });
      lifecycle.fail(new Error(`consumer group ${sub.group} failed to start: ${err.message}`));
    });
}

/**
 * Commits what was applied, leaves the group and stops the member for good, cancelling the
 * restart a join cut short schedules.
 */
export async function stopMember({ consumer, state, running, commits }: Member, log: Logger): Promise<void> {
  // A batch still being applied commits its own offsets before the member leaves (batch-delivery.ts).
  await commits
    .now()
    .catch((err) => log.debug("offset commit at stop failed; the records will be delivered again", { group: state.group, err }));
  await consumer.disconnect().catch((err) => log.warn("consumer disconnect", { err }));
  // A join cut short by the disconnect crashes, and kafkajs schedules a restart once
  // run() settles: wait for that (bounded) and stop again, which cancels it.
  let timer: Timer | undefined;
  await Promise.race([running, new Promise((resolve) => (timer = setTimeout(resolve, 5000)))]);
  clearTimeout(timer);
  await consumer.stop().catch(() => {});
  commits.cancel();
  Object.assign(state, { state: "stopped", joined: false, partitions: {} });
}
