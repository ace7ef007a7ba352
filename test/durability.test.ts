/**
 * A 201 means the order is on disk: the shop runs on PGlite under strace, which records every
 * write to PGlite's WAL, every fsync/fdatasync and every HTTP answer in the order they happened.
 * For each order answered 201, an fsync of a WAL file must have begun after the write of the
 * order's commit (the first WAL write holding its Idempotency-Key) and ended before the answer
 * went out. Only the order of events counts, never their times. With PGLITE_UNSAFE_NO_FSYNC=true
 * (PGlite as it comes) the same check finds no such fsync: the test can tell the two apart.
 *
 * The WAL is synced through PostgreSQL's own descriptor of a segment: a segment switch (PostgreSQL
 * closing the segment, whose sync is still owed, and opening the next) must not lose the sync of
 * the closed one, nor pay it on another file that took over its descriptor's number. Checked the
 * same way, on the syscalls: every segment written before barrier() resolved was synced after its
 * last write and before that.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { startShopProcess } from "./support/process";
import { processEnv } from "./support/shop-target";

/** Orders per run, posted this many at a time (so that commits share fsyncs). */
const ORDERS = 12;
const AT_ONCE = 4;

const scratch = mkdtempSync(join(tmpdir(), "durability-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** One syscall as strace saw it: where it began and ended in the trace (line numbers), its text. */
interface Call {
  name: string;
  begin: number;
  end: number;
  text: string;
}

/**
 * The syscalls of a `strace -f -y` output, in order. A call another thread interrupted is two
 * lines, `name(args <unfinished ...>` then `<... name resumed>...`: begin and end are those lines.
 * strace pads the pid column to five characters: a short pid is followed by more than one space.
 */
function parseTrace(trace: string): Call[] {
  const calls: Call[] = [];
  const open = new Map<string, Call>(); // by thread and name
  trace.split("\n").forEach((line, i) => {
    const resumed = /^(\d+) +\S+ <\.\.\. (\w+) resumed>/.exec(line);
    if (resumed) {
      const call = open.get(`${resumed[1]} ${resumed[2]}`);
      if (call) {
        call.end = i;
        open.delete(`${resumed[1]} ${resumed[2]}`);
      }
      return;
    }
    const m = /^(\d+) +\S+ (\w+)\((.*)$/.exec(line);
    if (!m) return;
    const call: Call = { name: m[2] as string, begin: i, end: i, text: m[3] as string };
    calls.push(call);
    if (line.endsWith("<unfinished ...>")) open.set(`${m[1]} ${call.name}`, call);
  });
  return calls;
}

const WAL = /^\d+<[^>]*\/pg_wal\/[0-9A-F]{24}>/;
/** The path of the WAL segment a call's first argument (a descriptor shown by `strace -y`) is. */
const segmentOf = (call: Call) => /^\d+<([^>]*\/pg_wal\/[0-9A-F]{24})>/.exec(call.text)?.[1];

/** The orders (key → id) whose 201 was not preceded by an fsync of the WAL begun after their commit. */
function unsyncedAnswers(calls: Call[], orders: Map<string, string>): string[] {
  const walWrites = calls.filter((c) => c.name === "pwrite64" && WAL.test(c.text));
  const walSyncs = calls.filter((c) => (c.name === "fsync" || c.name === "fdatasync") && WAL.test(c.text));
  const answers = calls.filter((c) => ["sendto", "write", "writev"].includes(c.name) && c.text.includes("HTTP/1.1 201"));
  const missing: string[] = [];
  for (const [key, id] of orders) {
    const commit = walWrites.find((c) => c.text.includes(key));
    const answer = answers.find((c) => c.text.includes(id));
    if (!commit || !answer)
      throw new Error(`order ${id}: ${commit ? "" : "no WAL write with its key "}${answer ? "" : "no 201 in the trace"}`);
    if (!walSyncs.some((s) => s.begin > commit.end && s.end < answer.begin)) missing.push(id);
  }
  return missing;
}

/** strace following every thread and child, with times, file paths (-y) and whole buffers, writing `calls` to `traceFile`. */
function straceCommand(traceFile: string, calls: string): string[] {
  return ["strace", "-f", "-qq", "-ttt", "-y", "-s", "1000000", "-e", "signal=none", "-e", `trace=${calls}`, "-o", traceFile];
}

/** Runs the shop under strace on a new data directory, places orders, stops it; returns the trace and the orders. */
async function placeOrdersUnderStrace(name: string, env: Record<string, string>): Promise<{ calls: Call[]; orders: Map<string, string> }> {
  const traceFile = join(scratch, `${name}.strace`);
  const strace = straceCommand(traceFile, "pwrite64,fsync,fdatasync,sendto,write,writev");
  const shop = await startShopProcess([], processEnv({ DATA_DIR: join(scratch, name), ...env }), 3, 180_000, {
    command: [...strace, "bun", "run", "src/app/main.ts"],
  });
  const orders = new Map<string, string>();
  try {
    for (let i = 0; i < ORDERS; i += AT_ONCE) {
      await Promise.all(
        Array.from({ length: AT_ONCE }, async () => {
          const key = `durability-${crypto.randomUUID()}`;
          const r = await fetch(`${shop.urls.registry}/orders`, {
            method: "POST",
            headers: { "content-type": "application/json", "idempotency-key": key },
            body: JSON.stringify({ user_id: 1, items: [{ product_id: 1, quantity: 1 }] }),
          });
          const body = (await r.json()) as { id: string };
          expect(r.status).toBe(201);
          orders.set(key, body.id);
        }),
      );
    }
  } finally {
    // strace's own pid is the one spawned; stopping the shop under it ends strace too.
    const children = readFileSync(`/proc/${shop.proc.pid}/task/${shop.proc.pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
    for (const pid of children) process.kill(Number(pid), "SIGTERM");
    await shop.proc.exited;
  }
  return { calls: parseTrace(readFileSync(traceFile, "utf8")), orders };
}

/** The WAL segments written before `until` with no fsync of them begun after their last write and ended before it. */
function unsyncedSegments(calls: Call[], until: Call): string[] {
  const lastWrite = new Map<string, Call>();
  for (const c of calls) {
    const segment = segmentOf(c);
    if (c.name === "pwrite64" && segment && c.end < until.begin) lastWrite.set(segment, c);
  }
  const synced = (segment: string, write: Call) =>
    calls.some((c) => ["fsync", "fdatasync"].includes(c.name) && segmentOf(c) === segment && c.begin > write.end && c.end < until.begin);
  return [...lastWrite].filter(([segment, write]) => !synced(segment, write)).map(([segment]) => basename(segment));
}

/**
 * In a process under strace: PGlite on a new data directory commits a row, switches WAL segments
 * (pg_switch_wal) and commits another row in the next segment, with no barrier() in between, then
 * awaits barrier() and prints "paid" and the durability stats. Returns the trace, the "paid" line
 * and the segments written before it.
 */
async function switchSegmentsUnderStrace(name: string, unsafe: boolean) {
  const traceFile = join(scratch, `${name}.strace`);
  const module = JSON.stringify(join(import.meta.dir, "../src/db/pglite-durability.ts"));
  const script = `
    import { createPglite } from ${module};
    const { client, durability } = await createPglite(process.env.SWITCH_DIR, {}, process.env.SWITCH_UNSAFE === "true");
    await client.exec("create table t (v int)");
    await durability?.barrier();
    await client.exec("insert into t values (1)");
    await client.query("select pg_switch_wal()");
    await client.exec("insert into t values (2)");
    await durability?.barrier();
    console.log("paid " + JSON.stringify(durability?.stats ?? null));
    await client.close();
    durability?.flush();`;
  const strace = straceCommand(traceFile, "pwrite64,fsync,fdatasync,write");
  const proc = Bun.spawn([...strace, process.execPath, "-e", script], {
    env: { ...process.env, SWITCH_DIR: join(scratch, name), SWITCH_UNSAFE: String(unsafe) },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`the segment switch script failed (${code}): ${err}`);
  const calls = parseTrace(readFileSync(traceFile, "utf8"));
  const paid = calls.find((c) => c.name === "write" && c.text.includes('"paid '));
  if (!paid) throw new Error(`no "paid" line in the trace; stdout: ${out}`);
  const written = new Set(
    calls
      .filter((c) => c.name === "pwrite64" && c.end < paid.begin)
      .map(segmentOf)
      .filter(Boolean)
      .map((s) => basename(s as string)),
  );
  const stats = JSON.parse(out.slice(out.indexOf("paid ") + 5).split("\n")[0] as string) as { heldCloses: number } | null;
  return { calls, paid, written: [...written].sort(), stats };
}

test("parseTrace: pids of any width (strace pads short ones), calls interrupted by another thread", () => {
  const calls = parseTrace(
    [
      "812   1796672352.693174 fdatasync(59</d/pg_wal/000000010000000000000001> <unfinished ...>",
      '123456 1796672352.693200 sendto(7<socket:[1]>, "HTTP/1.1 201 Created", 20, 0, NULL, 0) = 20',
      "812   1796672352.693300 <... fdatasync resumed>) = 0",
    ].join("\n"),
  );
  expect(calls.map((c) => [c.name, c.begin, c.end])).toEqual([
    ["fdatasync", 0, 2],
    ["sendto", 1, 1],
  ]);
});

describe("durable answers on PGlite", () => {
  test("every 201 follows an fsync of the WAL begun after its order's commit", async () => {
    const { calls, orders } = await placeOrdersUnderStrace("durable", {});
    expect(orders.size).toBe(ORDERS);
    expect(unsyncedAnswers(calls, orders)).toEqual([]);
  }, 240_000);

  test("PGLITE_UNSAFE_NO_FSYNC=true answers with nothing fsynced: the check above sees it", async () => {
    const { calls, orders } = await placeOrdersUnderStrace("unsafe", { PGLITE_UNSAFE_NO_FSYNC: "true" });
    expect(unsyncedAnswers(calls, orders)).toEqual([...orders.values()]);
  }, 240_000);

  const SEGMENTS = ["000000010000000000000001", "000000010000000000000002"];

  test("a WAL segment closed by a switch while its sync is owed is synced, on that segment, before barrier() resolves", async () => {
    const { calls, paid, written, stats } = await switchSegmentsUnderStrace("switch", false);
    expect(written).toEqual(SEGMENTS); // the switch happened before barrier()
    expect(unsyncedSegments(calls, paid)).toEqual([]);
    expect(stats?.heldCloses).toBeGreaterThan(0); // PostgreSQL closed a segment whose sync was owed
  }, 240_000);

  test("unsafe (no fsync), the same switch leaves both segments unsynced: the check above sees it", async () => {
    const { calls, paid, written } = await switchSegmentsUnderStrace("switch-unsafe", true);
    expect(written).toEqual(SEGMENTS);
    expect(unsyncedSegments(calls, paid)).toEqual(SEGMENTS);
  }, 240_000);
});
