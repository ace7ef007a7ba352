/**
 * `bun run fuzz`: the nightly-style route fuzzing run. Starts a one-process shop (on PGlite in
 * memory) as a child process, sends `--count` requests per service generated from each service's
 * own OpenAPI document and mutated (test/support/fuzz.ts), then checks the metrics, the RSS, the
 * CPU per request, the audit and an ordinary order. Prints the seed, the requests tried and the
 * statuses seen, and every broken rule. Exit 0: clean; 1: a rule broken; 3: bad arguments.
 *
 *   bun run fuzz [--seed N] [--count N] [--only N --service NAME]
 *
 * FUZZ_SEED and FUZZ_COUNT are the flags' environment twins (default: a random seed, 20,000 per service).
 */
import { parseArgs } from "node:util";
import { fuzzService, fuzzShop, type OpenApiDocument, summary } from "../test/support/fuzz";
import { startShopProcess } from "../test/support/process";
import { processEnv } from "../test/support/shop-target";

const USAGE = "usage: bun run fuzz [--seed N] [--count N] [--only N --service registry|wallet|storage]";

function options() {
  const { values } = parseArgs({
    args: Bun.argv.slice(2),
    options: {
      seed: { type: "string" },
      count: { type: "string" },
      only: { type: "string" },
      service: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  const seed = Number(values.seed ?? process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const count = Number(values.count ?? process.env.FUZZ_COUNT ?? 20_000);
  const only = values.only === undefined ? undefined : Number(values.only);
  if (!Number.isSafeInteger(seed)) throw new Error(`--seed: expected an integer, got ${values.seed}`);
  if (!Number.isSafeInteger(count) || count < 1) throw new Error(`--count: expected a positive integer, got ${values.count}`);
  if (only !== undefined && (!Number.isSafeInteger(only) || !["registry", "wallet", "storage"].includes(values.service ?? ""))) {
    throw new Error("--only N needs --service registry|wallet|storage");
  }
  return { seed, count, only, service: values.service, help: values.help };
}

async function main(): Promise<number> {
  let o: ReturnType<typeof options>;
  try {
    o = options();
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 3;
  }
  if (o.help) {
    console.log(
      `${USAGE}\n\nSends --count requests (FUZZ_COUNT, default 20000) per service of a one-process shop, seeded with --seed (FUZZ_SEED, default random).\n--only N --service S replays request N of service S alone and prints it with its answer's findings.`,
    );
    return 0;
  }
  const shop = await startShopProcess([], processEnv({ DATA_DIR: ":memory:" }), 3, 120_000, { maxLogLines: 200 });
  try {
    const urls = { registry: shop.urls.registry ?? "", wallet: shop.urls.wallet ?? "", storage: shop.urls.storage ?? "" };
    if (o.only !== undefined && o.service) {
      const baseUrl = urls[o.service as keyof typeof urls];
      const doc = (await (await fetch(`${baseUrl}/openapi.json`)).json()) as OpenApiDocument;
      const run = await fuzzService({
        service: o.service,
        baseUrl,
        doc,
        seed: o.seed,
        count: o.only + 1,
        only: o.only,
        pid: shop.proc.pid,
      });
      console.log(summary([run], o.seed));
      for (const v of run.violations) console.log(`${v.finding}: ${v.detail}\n  ${v.request}`);
      return run.violations.length === 0 ? 0 : 1;
    }
    console.log(`fuzz: seed ${o.seed}, ${o.count} requests per service`);
    const result = await fuzzShop({
      urls,
      pid: shop.proc.pid,
      seed: o.seed,
      count: o.count,
      progress: (s, n) => console.log(`  ${s}: ${n}`),
    });
    console.log(summary(result.runs, o.seed, result.after));
    console.log(
      `RSS ${result.memory.start.toFixed(0)} MB at the start, ${result.memory.rss.toFixed(0)} MB at the end, peak ${result.memory.peak.toFixed(0)} MB over the run`,
    );
    for (const v of result.after) console.log(`after: ${v.finding}: ${v.detail}`);
    const violations = result.runs.reduce((n, r) => n + r.violations.length, 0) + result.after.length;
    console.log(violations === 0 ? "fuzz clean" : `fuzz: ${violations} broken rule(s)`);
    return violations === 0 ? 0 : 1;
  } finally {
    await shop.stop();
  }
}

process.exit(await main());
