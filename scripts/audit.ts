/**
 * `bun run audit`: fetches the three modules' audit reports (registry's first), checks the
 * invariants across them, prints each violation and a summary line.
 * Exit 0: clean; 1: violations; 2: a service could not be reached (or answered no report); 3: bad arguments.
 *
 *   bun run audit [--registry-url URL] [--wallet-url URL] [--storage-url URL] [--token TOKEN] [--timeout SECONDS] [--json]
 *
 * Each flag has an environment twin: REGISTRY_URL, WALLET_URL, STORAGE_URL (defaults
 * http://localhost: REGISTRY_PORT, WALLET_PORT, STORAGE_PORT, else 8000, 8001, 8002), ADMIN_TOKEN,
 * AUDIT_TIMEOUT_SECONDS (default 60).
 */
import { parseArgs } from "node:util";
import { auditShop, httpSources, summaryLine } from "../src/saga/audit/shop-audit";

const USAGE =
  "usage: bun run audit [--registry-url URL] [--wallet-url URL] [--storage-url URL] [--token TOKEN] [--timeout SECONDS] [--json]";

const HELP = `${USAGE}

Checks the shop's invariants across registry, wallet and storage; prints each violation and a summary line.
Exit 0: clean; 1: violations; 2: a service could not be reached or refused the token; 3: bad arguments.

  --registry-url URL   registry's base URL (REGISTRY_URL; default http://localhost:$REGISTRY_PORT, else :8000)
  --wallet-url URL     wallet's base URL (WALLET_URL; default http://localhost:$WALLET_PORT, else :8001)
  --storage-url URL    storage's base URL (STORAGE_URL; default http://localhost:$STORAGE_PORT, else :8002)
  --token TOKEN        the services' admin token (ADMIN_TOKEN). Prefer the variable: \`bun run\` prints
                       its command line, so a token given as a flag shows on the terminal
  --timeout SECONDS    how long to wait for each report (AUDIT_TIMEOUT_SECONDS; default 60)
  --json               the whole audit as JSON
  -h, --help           this text`;

function options() {
  const { values } = parseArgs({
    args: Bun.argv.slice(2),
    options: {
      "registry-url": { type: "string" },
      "wallet-url": { type: "string" },
      "storage-url": { type: "string" },
      token: { type: "string" },
      timeout: { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  const env = process.env;
  const timeout = Number(values.timeout ?? env.AUDIT_TIMEOUT_SECONDS ?? 60);
  if (!Number.isFinite(timeout) || timeout <= 0) throw new Error(`--timeout: expected a number of seconds, got ${values.timeout}`);
  // The shop's own ports (from .env, which `bun run` loads, or the environment) unless a URL is given.
  const urls = {
    registry: values["registry-url"] ?? env.REGISTRY_URL ?? `http://localhost:${env.REGISTRY_PORT || 8000}`,
    wallet: values["wallet-url"] ?? env.WALLET_URL ?? `http://localhost:${env.WALLET_PORT || 8001}`,
    storage: values["storage-url"] ?? env.STORAGE_URL ?? `http://localhost:${env.STORAGE_PORT || 8002}`,
  };
  for (const [name, url] of Object.entries(urls)) {
    if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol))
      throw new Error(`--${name}-url: expected an http(s) URL, got ${url}`);
  }
  return { urls, token: values.token ?? (env.ADMIN_TOKEN || undefined), timeoutMs: timeout * 1000, json: values.json, help: values.help };
}

async function main(): Promise<number> {
  let opts: ReturnType<typeof options>;
  try {
    opts = options();
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 3;
  }
  if (opts.help) {
    console.log(HELP);
    return 0;
  }
  if (!opts.token) console.error("no admin token (--token or ADMIN_TOKEN): the services will refuse the reports");
  const audit = await auditShop(httpSources(opts.urls, opts.token, opts.timeoutMs));
  if (opts.json) console.log(JSON.stringify(audit, null, 2));
  else {
    for (const v of audit.violations) console.log(v);
    console.log(summaryLine(audit));
  }
  const unreachable = Object.values(audit.modules).some((m) => !m.reachable);
  return unreachable ? 2 : audit.ok ? 0 : 1;
}

process.exit(await main());
