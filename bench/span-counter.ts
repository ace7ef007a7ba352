/**
 * The traced topology's collector: an OTLP/HTTP (JSON) receiver in a process of its own, so its
 * CPU is not charged to the shop, that keeps only counts (per span name and 100 ms of start time)
 * so its memory stays small however long the run. `GET /count?from=&to=` (epoch ms) answers the
 * spans started in that window, by name. Run as a script it prints its URL and serves until killed.
 */
import { type ChildServer, startChildServer } from "./child-server";

/** A running span counter. */
export interface SpanCounter extends ChildServer {
  /**
   * Spans started in [fromMs, toMs) (epoch ms, to 100 ms), by name, once their count has stopped
   * growing for `quietMs` (the shop exports every second) or `timeoutMs` passed.
   */
  settledCount(fromMs: number, toMs: number, quietMs?: number, timeoutMs?: number): Promise<Record<string, number>>;
}

const BUCKET_MS = 100;

/** Starts the counter process; stopped by the bench's cleanup (or `stop()`). */
export async function startSpanCounter(): Promise<SpanCounter> {
  const server = await startChildServer("span-counter.ts", [], "OTLP span counter");
  const count = async (fromMs: number, toMs: number): Promise<Record<string, number>> => {
    const res = await fetch(`${server.url}/count?from=${Math.floor(fromMs)}&to=${Math.ceil(toMs)}`);
    if (!res.ok) throw new Error(`span counter: ${res.status} ${await res.text()}`);
    return (await res.json()) as Record<string, number>;
  };
  const total = (byName: Record<string, number>) => Object.values(byName).reduce((a, b) => a + b, 0);
  return {
    ...server,
    async settledCount(fromMs, toMs, quietMs = 1500, timeoutMs = 15_000) {
      const deadline = performance.now() + timeoutMs;
      let last = await count(fromMs, toMs);
      let since = performance.now();
      while (performance.now() - since < quietMs && performance.now() < deadline) {
        await Bun.sleep(250);
        const now = await count(fromMs, toMs);
        if (total(now) !== total(last)) since = performance.now();
        last = now;
      }
      return last;
    },
  };
}

type OtlpBody = { resourceSpans?: { scopeSpans?: { spans?: { name?: string; startTimeUnixNano?: string | number }[] }[] }[] };

/** Serves POST /v1/traces (counting) and GET /count on a free loopback port. */
function serveCounts(): string {
  /** 100 ms bucket of start time -> span name -> spans. */
  const buckets = new Map<number, Map<string, number>>();
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const url = new URL(req.url);
      if (req.method === "POST" && url.pathname === "/v1/traces") {
        if (!(req.headers.get("content-type") ?? "").startsWith("application/json")) return new Response("JSON only", { status: 415 });
        const body = (await req.json()) as OtlpBody;
        for (const rs of body.resourceSpans ?? []) {
          for (const ss of rs.scopeSpans ?? []) {
            for (const s of ss.spans ?? []) {
              const bucket = Math.floor(Number(s.startTimeUnixNano ?? 0) / 1e6 / BUCKET_MS);
              const names = buckets.get(bucket) ?? new Map<string, number>();
              names.set(s.name ?? "", (names.get(s.name ?? "") ?? 0) + 1);
              buckets.set(bucket, names);
            }
          }
        }
        return Response.json({ partialSuccess: {} });
      }
      if (req.method === "GET" && url.pathname === "/count") {
        const from = Number(url.searchParams.get("from") ?? 0) / BUCKET_MS;
        const to = Number(url.searchParams.get("to") ?? Number.POSITIVE_INFINITY) / BUCKET_MS;
        const byName: Record<string, number> = {};
        for (const [bucket, names] of buckets) {
          if (bucket < Math.floor(from) || bucket >= Math.ceil(to)) continue;
          for (const [name, n] of names) byName[name] = (byName[name] ?? 0) + n;
        }
        return Response.json(byName);
      }
      return new Response("not found", { status: 404 });
    },
  });
  return `http://127.0.0.1:${server.port}`;
}

if (import.meta.main) console.log(serveCounts());
