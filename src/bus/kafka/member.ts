/** A consumer group member: its consumer, the state it reports for health, and kafkajs's events followed into that state. */
import type { Consumer } from "kafkajs";
import type { Logger } from "../../log";
import { countKafkaRequest } from "../../work-counters";
import type { ConsumerState, Subscription } from "../bus";
import type { Lifecycle } from "./lifecycle";
import type { OffsetCommits } from "./offset-commits";

/** One subscription's consumer and what it reported. */
export interface Member {
  sub: Subscription;
  consumer: Consumer;
  state: ConsumerState;
  /** The offsets of what the handler applied, waiting to be committed together. */
  commits: OffsetCommits;
  /** consumer.run(): settles once the first join succeeded or crashed. */
  running: Promise<void> | null;
}

/** The members of one bus, with the subscriptions they serve and where they report to. */
export interface GroupMembers {
  log: Logger;
  lifecycle: Lifecycle;
  subscriptions: Subscription[];
  members: Member[];
}

/** The state of a member that has not connected yet. */
export function newConsumerState(sub: Subscription): ConsumerState {
  return {
    group: sub.group,
    topics: [...sub.topics],
    state: "joining",
    joined: false,
    partitions: {},
    last_poll_at: null,
    last_error: null,
    last_error_at: null,
  };
}

/** A copy of a member's state for health, which its reader cannot change. */
export function copyState(state: ConsumerState): ConsumerState {
  return { ...state, topics: [...state.topics], partitions: { ...state.partitions } };
}

const now = () => new Date().toISOString();

/** Records the error a member last reported, and when. */
export function setError(state: ConsumerState, err: unknown): void {
  state.last_error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  state.last_error_at = now();
}

/** Whether every subscription has its member and all of them are in their groups. */
function everyMemberJoined({ members, subscriptions }: GroupMembers): boolean {
  return members.length === subscriptions.length && members.every((x) => x.state.joined);
}

/** Follows the consumer's events into its state; a crash kafkajs gives up on is fatal. */
export function followEvents(m: Member, groups: GroupMembers): void {
  const { consumer, state } = m;
  const { log, lifecycle } = groups;
  const { GROUP_JOIN, FETCH_START, REBALANCING, CRASH, STOP } = consumer.events;
  consumer.on(consumer.events.REQUEST, countKafkaRequest);
  consumer.on(GROUP_JOIN, ({ payload }) => {
    Object.assign(state, { state: "joined", joined: true, partitions: { ...payload.memberAssignment } });
    // One line per rebalance this member went through: which partitions it holds from now on.
    log.info("consumer group joined", {
      group: state.group,
      member: payload.memberId,
      leader: payload.isLeader,
      partitions: state.partitions,
      duration_ms: payload.duration,
    });
    if (everyMemberJoined(groups)) lifecycle.markJoined();
  });
  consumer.on(FETCH_START, () => {
    state.last_poll_at = now();
  });
  consumer.on(REBALANCING, ({ payload }) => {
    if (!lifecycle.stopping) log.info("consumer group rebalancing", { group: state.group, member: payload.memberId });
    Object.assign(state, { state: "rebalancing", joined: false });
  });
  consumer.on(STOP, () => {
    Object.assign(state, { state: lifecycle.stopping ? "stopped" : state.state, joined: false, partitions: {} });
  });
  consumer.on(CRASH, ({ payload }) => {
    if (lifecycle.stopping) return;
    const { error, restart } = payload;
    setError(state, error);
    Object.assign(state, { state: restart ? "restarting" : "failed", joined: false, partitions: {} });
    if (restart) {
      log.warn("consumer crashed; kafkajs restarts it", { group: state.group, restart, err: error });
    } else {
      log.error("consumer crashed; kafkajs does not restart it", { group: state.group, restart, err: error });
      lifecycle.fail(new Error(`consumer group ${state.group} crashed: ${error.message}`));
    }
  });
}
