/**
 * The seeded fault simulator (docs/simulator.md).
 *   bun run simulate --seed 7 --orders 200      one seed: violations, the first violating order's trace; exit 1 on violations
 *   bun run simulate --seed 7 --trace           ... and print the whole trace
 *   bun run simulate --seeds 1000 --orders 200  seeds 1..1000: a progress line, a summary, the failing seeds
 */
import { FAULT_KINDS, PLANTED_BUGS, type PlantedBug, type SimResult, simulate } from "../sim/simulator";

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i === -1) return undefined;
  const v = process.argv[i + 1];
  return v === undefined || v.startsWith("--") ? "" : v;
}
function intFlag(name: string, fallback: number): number {
  const v = flag(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`--${name} wants a whole number, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
}

const orders = intFlag("orders", 200);
const faults = flag("no-faults") === undefined;
const plant = plantFlag();

/** --plant NAME: one of PLANTED_BUGS; a name it does not know stops the run (exit 2) instead of simulating no bug. */
function plantFlag(): PlantedBug | undefined {
  const v = flag("plant");
  if (v === undefined) return undefined;
  const bug = PLANTED_BUGS.find((b) => b === v);
  if (!bug) {
    console.error(`--plant wants one of ${PLANTED_BUGS.join(", ")}, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return bug;
}

function printResult(r: SimResult, full: boolean) {
  if (full) process.stdout.write(r.trace);
  const counts = FAULT_KINDS.map((k) => `${k} ${r.faults[k]}`).join(", ");
  console.log(
    `seed ${r.seed}: ${r.orders} orders, ${r.steps} steps, ${r.simulatedSeconds}s simulated; ${Object.entries(r.outcomes)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}`,
  );
  console.log(`faults: ${counts}`);
  console.log(`trace sha256 ${r.hash}`);
  if (r.violations.length === 0) {
    console.log("audit clean");
    return;
  }
  console.log(`${r.violations.length} violation(s):`);
  for (const v of r.violations) console.log(`  ${v}`);
  if (r.firstViolatingOrder) {
    console.log(`trace of ${r.firstViolatingOrder.label}:`);
    for (const l of r.firstViolatingOrder.lines) console.log(`  ${l}`);
  }
  console.log(
    `replay: bun run simulate --seed ${r.seed} --orders ${r.orders}${plant ? ` --plant ${plant}` : ""}${faults ? "" : " --no-faults"} --trace`,
  );
}

/** Prints the sweep's progress: a bar on a terminal, a line every ten seeds otherwise. */
function progress(done: number, n: number, failing: number, secs: number, tty: boolean) {
  if (tty) {
    const width = 30;
    const filled = Math.round((done / n) * width);
    process.stderr.write(
      `\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${n} seeds, ${failing} failing, ${secs.toFixed(0)}s `,
    );
  } else if (done % 10 === 0 || done === n) {
    console.error(`${done}/${n} seeds, ${failing} failing, ${secs.toFixed(0)}s`);
  }
}

/** Runs seeds `from`..`from + n - 1`: a line per failing seed, progress, then a summary; exit 1 if any failed. */
async function sweep(n: number, from: number): Promise<never> {
  const tty = process.stderr.isTTY === true;
  const failing: number[] = [];
  const started = performance.now();
  let slowest = { seed: 0, took: 0 };
  const totals = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<string, number>;
  for (let seed = from; seed < from + n; seed++) {
    const seedStarted = performance.now();
    let r: SimResult;
    try {
      r = await simulate({ seed, orders, faults, plant });
    } catch (err) {
      failing.push(seed);
      if (tty) process.stderr.write("\n");
      console.log(`seed ${seed}: the run failed: ${(err as Error).message}`);
      continue;
    }
    const took = (performance.now() - seedStarted) / 1000;
    slowest = took > slowest.took ? { seed, took } : slowest;
    for (const k of FAULT_KINDS) totals[k] = (totals[k] ?? 0) + r.faults[k];
    if (r.violations.length > 0) {
      failing.push(seed);
      if (tty) process.stderr.write("\n");
      console.log(`seed ${seed}: ${r.violations.length} violation(s), first: ${r.violations[0]}`);
    }
    progress(seed - from + 1, n, failing.length, (performance.now() - started) / 1000, tty);
  }
  if (tty) process.stderr.write("\n");
  const secs = (performance.now() - started) / 1000;
  console.log(`${n} seeds (${from}..${from + n - 1}) x ${orders} orders in ${secs.toFixed(0)}s: ${failing.length} failing`);
  console.log(`slowest: seed ${slowest.seed} (${slowest.took.toFixed(1)}s)`);
  console.log(`faults injected: ${FAULT_KINDS.map((k) => `${k} ${totals[k]}`).join(", ")}`);
  if (failing.length > 0) console.log(`failing seeds: ${failing.join(" ")}`);
  process.exit(failing.length > 0 ? 1 : 0);
}

if (flag("seeds") !== undefined) {
  await sweep(intFlag("seeds", 100), intFlag("from", 1));
} else {
  const seed = intFlag("seed", 1);
  const r = await simulate({ seed, orders, faults, plant });
  printResult(r, flag("trace") !== undefined);
  process.exit(r.violations.length > 0 ? 1 : 0);
}
