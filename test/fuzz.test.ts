/**
 * Route fuzzing (issue 24): requests generated from each service's own OpenAPI document and
 * mutated (test/support/fuzz.ts) against a one-process shop started as a child process, whose CPU
 * time and RSS are read from /proc. Every answer is a documented status with a JSON error body,
 * never a 5xx, within a CPU bound; afterwards the metrics count no 5xx, the RSS stayed bounded,
 * the audit is clean and an ordinary order completes.
 *
 * The seed is new each run and printed; replay a run with FUZZ_SEED=<seed>, one request with
 * `bun run fuzz --seed <seed> --service <name> --only <index>`. FUZZ_COUNT sets the requests per
 * service (default 1,500); `bun run fuzz` is the long run.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect } from "node:net";
import { type Answer, check, type Finding, type FuzzRequest, fuzzShop, type Operation, type ShopRun, summary } from "./support/fuzz";
import { adminHeaders } from "./support/http";
import { type ShopProcess, startShopProcess } from "./support/process";
import { processEnv } from "./support/shop-target";

const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const COUNT = Number(process.env.FUZZ_COUNT ?? 1_500);

/**
 * Findings of issue 24 that src/http is being fixed for on another branch: printed with their
 * counts, not failed on. Once that fix is merged, empty this set (and raise DEEP_NESTING_MAX in
 * test/support/fuzz.ts to 100_000); every other finding fails the test.
 */
const AWAITING_HTTP_FIX = new Set<Finding>([]);

let shop: ShopProcess;
let result: ShopRun;

beforeAll(async () => {
  shop = await startShopProcess([], processEnv({ DATA_DIR: ":memory:" }), 3, 120_000, { maxLogLines: 200 });
}, 130_000);
afterAll(() => shop?.stop());

describe("route fuzzing", () => {
  test(`${COUNT} requests per service from its OpenAPI document, seed ${SEED}`, async () => {
    const urls = { registry: shop.urls.registry ?? "", wallet: shop.urls.wallet ?? "", storage: shop.urls.storage ?? "" };
    result = await fuzzShop({ urls, pid: shop.proc.pid, seed: SEED, count: COUNT });
    console.log(summary(result.runs, SEED, result.after));
    console.log(
      `RSS ${result.memory.start.toFixed(0)} MB at the start, ${result.memory.peak.toFixed(0)} MB at most, ${result.memory.rss.toFixed(0)} MB at the end`,
    );
    // Every request was tried and answered (or closed where Bun documents a close).
    expect(result.runs.map((r) => [r.service, r.tried])).toEqual([
      ["registry", COUNT],
      ["wallet", COUNT],
      ["storage", COUNT],
    ]);
    const all = [...result.runs.flatMap((r) => r.violations), ...result.after];
    const known = all.filter((v) => AWAITING_HTTP_FIX.has(v.finding));
    if (known.length > 0)
      console.log(`${known.length} answers broke rules that src/http is being fixed for (AWAITING_HTTP_FIX); not failed on`);
    const unexpected = all.filter((v) => !AWAITING_HTTP_FIX.has(v.finding));
    expect(unexpected.slice(0, 10).map((v) => `${v.finding}: ${v.detail} <- ${v.request.slice(0, 600)}`)).toEqual([]);
  }, 900_000);

  // Found by the fuzzer: `Host: %00` passed the Host check, then reading the body built a Request from an invalid URL (500).
  test("a Host that is no URL host is 400 bad_host, with a body too", async () => {
    const { port } = new URL(shop.urls.registry ?? "");
    for (const host of ["%00", "%zz", "a%2Fb"]) {
      const body = '{"user_id":1,"items":[{"product_id":1,"quantity":1}]}';
      const head = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(port), "127.0.0.1");
        let got = "";
        socket.on("data", (d: Buffer) => {
          got += d.toString("latin1");
        });
        socket.on("close", () => resolve(got));
        socket.on("error", reject);
        socket.write(
          `POST /orders HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
        );
      });
      expect([host, head.split("\r\n")[0], head.includes('"code":"bad_host"')]).toEqual([host, "HTTP/1.1 400 Bad Request", true]);
    }
  });

  // Found by the fuzzer: the shell read a body declared gzip (or any coding) as plain JSON and deposited it.
  test("a body with a Content-Encoding is 415 and changes nothing", async () => {
    const user = 2_147_482_000;
    for (const coding of ["gzip", "deflate", "x-unknown"]) {
      const res = await fetch(`${shop.urls.wallet}/wallets/${user}/deposits`, {
        method: "POST",
        headers: { ...adminHeaders, "content-type": "application/json", "content-encoding": coding },
        body: '{"amount_cents":100}',
      });
      expect([res.status, await res.json()]).toEqual([
        415,
        { error: { code: "unsupported_media_type", message: "send the body without a Content-Encoding", field: "Content-Encoding" } },
      ]);
    }
    expect((await fetch(`${shop.urls.wallet}/wallets/${user}`)).status).toBe(404);
    const plain = await fetch(`${shop.urls.wallet}/wallets/${user}/deposits`, {
      method: "POST",
      headers: { ...adminHeaders, "content-type": "application/json", "content-encoding": "identity" },
      body: '{"amount_cents":100}',
    });
    expect(plain.status).toBe(201);
  });
});

/** The oracles themselves, on answers made up to break one rule each: a fuzzer that cannot see a finding proves nothing. */
describe("the fuzzer's checks", () => {
  const op: Operation = {
    method: "POST",
    path: "/wallets/{user_id}/deposits",
    params: [],
    body: { type: "object" },
    statuses: new Map([
      [201, new Set<string>()],
      [400, new Set(["invalid_request"])],
      [503, new Set(["not_ready"])],
    ]),
    admin: true,
  };
  const request = (patch: Partial<FuzzRequest> = {}): FuzzRequest => ({
    op,
    method: "POST",
    target: "/wallets/1/deposits",
    version: "HTTP/1.1",
    headers: [["Host", "127.0.0.1"]],
    body: new TextEncoder().encode('{"amount_cents":1}'),
    mutations: [],
    pathIntact: true,
    bunLevel: false,
    truncated: false,
    badKey: null,
    invalidUtf8: false,
    depth: 0,
    ...patch,
  });
  const secure: [string, string][] = [
    ["x-content-type-options", "nosniff"],
    ["x-frame-options", "DENY"],
    ["referrer-policy", "no-referrer"],
    ["content-security-policy", "frame-ancestors 'none'"],
    ["cross-origin-resource-policy", "same-origin"],
    ["cross-origin-opener-policy", "same-origin"],
    ["content-type", "application/json"],
  ];
  const answer = (status: number, body: unknown, headers: [string, string][] = secure): Answer => ({
    status,
    headers: new Map(headers.map(([k, v]) => [k, [v]])),
    body: Buffer.from(typeof body === "string" ? body : JSON.stringify(body)),
  });
  const findings = (r: FuzzRequest, a: Answer) => check(r, a, { ops: [op] }).map((v) => v.finding);
  const error = (code: string) => ({ error: { code, message: "m" } });

  test("a documented answer passes", () => {
    expect(findings(request(), answer(201, {}, [...secure, ["location", "/wallets/1"]]))).toEqual([]);
    expect(findings(request(), answer(400, error("invalid_request")))).toEqual([]);
    expect(findings(request(), answer(404, error("not_found")))).toEqual([]);
  });

  test("each broken rule is named", () => {
    expect(findings(request(), answer(500, error("internal_error")))).toEqual(["5xx"]);
    expect(findings(request(), answer(409, error("balance_limit")))).toEqual(["undocumented-status"]);
    expect(findings(request(), answer(400, "not json"))).toEqual(["not-json-error"]);
    expect(findings(request(), answer(400, error("made_up")))).toEqual(["undocumented-code"]);
    expect(findings(request(), answer(400, error("invalid_request"), secure.slice(1)))).toEqual(["security-headers"]);
    expect(findings(request(), answer(400, error("bad_host"), [["content-type", "application/json"]]))).toEqual([
      "security-headers-bad-host",
    ]);
    expect(findings(request(), answer(503, error("not_ready")))).toEqual(["retry-after-503"]);
    expect(findings(request(), answer(201, {}))).toEqual(["status-header"]);
    expect(findings(request(), { status: 0, headers: new Map(), body: Buffer.alloc(0) })).toEqual(["no-answer"]);
  });

  test("an Idempotency-Key or a body the rules refuse is never accepted", () => {
    const created = answer(201, {}, [...secure, ["location", "/wallets/1"]]);
    expect(findings(request({ headers: [["Idempotency-Key", "a b"]], badKey: "space" }), created)).toEqual(["idempotency-key-space"]);
    expect(findings(request({ headers: [["Idempotency-Key", "caf\u00e9"]] }), created)).toEqual(["idempotency-key-accepted"]);
    expect(findings(request({ invalidUtf8: true }), created)).toEqual(["invalid-utf8"]);
    expect(findings(request({ headers: [["Content-Encoding", "gzip"]] }), created)).toEqual(["content-encoding-ignored"]);
    expect(
      findings(request({ invalidUtf8: true }), answer(400, { error: { code: "invalid_request", message: "\ufffd: Unrecognized key" } })),
    ).toEqual(["invalid-utf8"]);
  });
});
