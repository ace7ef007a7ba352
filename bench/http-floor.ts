/** GET /products throughput with wrk, against the registry and against a bare Bun.serve with the same body. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ChildServer, startChildServer } from "./child-server";
import { trackPid, untrackPid } from "./cleanup";
import type { BenchSettings } from "./settings";

/** Requests per second wrk reaches on `url` with the bench's wrk settings. */
export async function wrkRequestsPerSecond(url: string, s: BenchSettings): Promise<number> {
  const args = [`-t${s.wrkThreads}`, `-c${s.wrkConnections}`, `-d${s.wrkSeconds}s`, url];
  const proc = Bun.spawn(["wrk", ...args], { stdout: "pipe", stderr: "pipe" });
  trackPid(proc.pid);
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  untrackPid(proc.pid);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out)?.[1];
  if (code !== 0 || rps === undefined) throw new Error(`wrk ${args.join(" ")} exited with ${code}: ${err || out}`);
  const errors = /Non-2xx or 3xx responses: (\d+)|Socket errors: .*/.exec(out);
  if (errors) console.error(`wrk ${url}: ${errors[0]}`);
  return Number(rps);
}

/** Starts bench/bare-server.ts serving `body`; returns its URL and a stop function (also deferred). */
export async function startBareServer(body: string): Promise<ChildServer> {
  const dir = mkdtempSync(join(tmpdir(), "bench-bare-"));
  const file = join(dir, "products.json");
  writeFileSync(file, body);
  return startChildServer("bare-server.ts", [file], "bare Bun.serve", () => rmSync(dir, { recursive: true, force: true }));
}
