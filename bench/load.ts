/** Order load: money and stock for it, clients posting at saturation, and open-loop arrivals at a fixed rate. */
import { adminHeaders } from "../test/support/http";
import type { ShopUrls } from "./launch";
import type { OrderTracker } from "./order-tracker";
import { cpuSince, cpuSnapshot, type MachineSnapshot, machineSince, machineSnapshot, type Pids, runtimeMsSince } from "./proc-stats";

/** How a phase of posting went; outcomes are read from the tracker afterwards. */
export interface PostingRun {
  /** performance.now() when posting began and when the last POST answered. */
  startedAt: number;
  endedAt: number;
  /** Accepted order ids with the time each was sent (or due). */
  accepted: { id: string; sentAt: number }[];
  /** Non-201 answers and network errors, by status ("error" for the latter). */
  failures: Record<string, number>;
  /** % of a core per shop process while posting, of this (load generating) process, and of the whole machine. */
  cpu: Record<string, number>;
  /** CPU ms of the shop's runtime threads (JIT, GC, allocator) over the window: inside `cpu` already. */
  runtimeMs: number;
  loadCpu: number;
  machineCpu: number;
}

const PRODUCTS = 100; // the fixture catalogue
const STOCK_PER_PRODUCT = 1_000_000;
const MONEY_PER_USER_CENTS = 10_000_000_000;
const FIRST_USER = 700_001;

/** User ids the bench orders for. */
export function benchUsers(count: number): number[] {
  return Array.from({ length: count }, (_, i) => FIRST_USER + i);
}

/** Gives every user plenty of money and every fixture product plenty of stock. */
export async function stockUp(urls: ShopUrls, users: number[]): Promise<void> {
  const calls = [
    ...users.map((u) => () => postJson(`${urls.wallet}/wallets/${u}/deposits`, { amount_cents: MONEY_PER_USER_CENTS }, adminHeaders)),
    ...Array.from(
      { length: PRODUCTS },
      (_, i) => () => postJson(`${urls.storage}/stock/${i + 1}/receipts`, { quantity: STOCK_PER_PRODUCT }, adminHeaders),
    ),
  ];
  for (let i = 0; i < calls.length; i += 16) {
    const answers = await Promise.all(calls.slice(i, i + 16).map((c) => c()));
    const bad = answers.find((a) => a.status >= 300);
    if (bad) throw new Error(`stocking up: ${bad.status} ${bad.text}`);
  }
}

/** `clients` loops each posting orders back to back for `seconds`; every accepted order goes to the tracker. */
export async function postAtSaturation(
  urls: ShopUrls,
  tracker: OrderTracker,
  pids: Pids,
  users: number[],
  seconds: number,
): Promise<PostingRun> {
  const run = begin(pids);
  const until = run.startedAt + seconds * 1000;
  let n = 0;
  await Promise.all(
    users.map(async (user) => {
      while (performance.now() < until) {
        const sentAt = performance.now();
        await placeOrder(urls.registry, user, (n++ % PRODUCTS) + 1, sentAt, tracker, run);
      }
    }),
  );
  return finish(run, pids);
}

/**
 * Open-loop arrivals: order i is posted at start + i/rate whatever the answers so far, for
 * `seconds`, with `headersFor(i)` as extra request headers (e.g. an Idempotency-Key).
 */
export async function postAtRate(
  urls: ShopUrls,
  tracker: OrderTracker,
  pids: Pids,
  users: number[],
  ratePerSecond: number,
  seconds: number,
  headersFor: (i: number) => Record<string, string> = () => ({}),
): Promise<PostingRun> {
  const run = begin(pids);
  const total = Math.max(1, Math.round(ratePerSecond * seconds));
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = run.startedAt + (i * 1000) / ratePerSecond;
    const wait = due - performance.now();
    if (wait >= 1) await Bun.sleep(wait);
    inFlight.push(placeOrder(urls.registry, users[i % users.length] as number, (i % PRODUCTS) + 1, due, tracker, run, headersFor(i)));
  }
  await Promise.all(inFlight);
  return finish(run, pids);
}

type Started = Omit<PostingRun, "endedAt" | "cpu" | "runtimeMs" | "loadCpu" | "machineCpu"> & {
  before: ReturnType<typeof cpuSnapshot>;
  own: NodeJS.CpuUsage;
  machine: MachineSnapshot;
};

function begin(pids: Pids): Started {
  const before = cpuSnapshot(pids);
  return { startedAt: performance.now(), accepted: [], failures: {}, before, own: process.cpuUsage(), machine: machineSnapshot() };
}

function finish(run: Started, pids: Pids): PostingRun {
  const endedAt = performance.now();
  const own = process.cpuUsage(run.own);
  const loadCpu = ((own.user + own.system) / 1000 / (endedAt - run.startedAt)) * 100;
  const machineCpu = machineSince(run.machine);
  return {
    startedAt: run.startedAt,
    endedAt,
    accepted: run.accepted,
    failures: run.failures,
    cpu: cpuSince(run.before, pids),
    runtimeMs: runtimeMsSince(run.before),
    loadCpu,
    machineCpu,
  };
}

/** POSTs one single-item order; on 201 hands it to the tracker, else counts the failure. */
async function placeOrder(
  registry: string,
  user: number,
  product: number,
  sentAt: number,
  tracker: OrderTracker,
  run: Started,
  headers: Record<string, string> = {},
): Promise<void> {
  const body = { user_id: user, items: [{ product_id: product, quantity: 1 }] };
  let key: string;
  try {
    const answer = await postJson(`${registry}/orders`, body, headers);
    if (answer.status === 201) {
      const id = (JSON.parse(answer.text) as { id: string }).id;
      run.accepted.push({ id, sentAt });
      tracker.track(id, sentAt);
      return;
    }
    key = String(answer.status);
  } catch {
    key = "error";
  }
  run.failures[key] = (run.failures[key] ?? 0) + 1;
}

async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, text: await res.text() };
}
