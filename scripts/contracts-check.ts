/**
 * `bun run contracts:check`: fails when src/contracts no longer reads what the committed baseline
 * (src/contracts/baseline.asyncapi.json, the messages of the version in production) writes, or
 * writes what its readers refuse. `--update` rewrites the baseline from the code: do it once every
 * process runs the new version (docs/adr/0015-message-versions-side-by-side.md).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MESSAGES, type MessageType, readableVersions } from "../src/contracts";
import { asyncApiDocument } from "../src/http/asyncapi-document";
import { incompatibilities } from "./contracts/compatibility";

const BASELINE = join(import.meta.dir, "../src/contracts/baseline.asyncapi.json");
const args = process.argv.slice(2);
const unknown = args.filter((a) => a !== "--update" && a !== "--baseline" && !a.startsWith("--baseline="));
if (unknown.length > 0 || args.includes("--help")) {
  console.error("usage: bun run contracts:check [--update] [--baseline=<file>]");
  process.exit(2);
}
const baselineFile = args.find((a) => a.startsWith("--baseline="))?.slice("--baseline=".length) ?? BASELINE;

/** The document under the seed's topic names: names are configuration, not contract. */
const current = JSON.parse(
  JSON.stringify(
    asyncApiDocument({
      topics: { new_orders: "new_orders", rejected_orders: "rejected_orders", success: "success_topics" },
      brokers: ["kafka:9092"],
      partitions: 3,
    }),
  ),
) as unknown;

if (args.includes("--update")) {
  writeFileSync(baselineFile, `${JSON.stringify(current, null, 2)}\n`);
  console.log(`contracts: baseline written to ${baselineFile}`);
  process.exit(0);
}

const baseline = JSON.parse(readFileSync(baselineFile, "utf8")) as unknown;
const readable = (type: string) => (Object.hasOwn(MESSAGES, type) ? readableVersions(type as MessageType) : []);
const findings = incompatibilities(baseline, current, readable);
if (findings.length === 0) {
  const types = Object.keys(MESSAGES) as MessageType[];
  console.log(`contracts: compatible with the baseline (${types.map((t) => `${t} v${MESSAGES[t].version}`).join(", ")})`);
  process.exit(0);
}
console.log(`contracts: ${findings.length} incompatible change(s) against the baseline:`);
for (const f of findings)
  console.log(`- ${f.type} ${f.path}: ${f.change} (breaks ${f.breaks === "both" ? "readers and writers" : f.breaks})`);
console.log(
  "Additive changes (a new optional field) need nothing. Anything else needs a new message version that every reader accepts before any writer sends it: docs/adr/0015-message-versions-side-by-side.md.",
);
process.exit(1);
