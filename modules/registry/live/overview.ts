/**
 * Balances and stock for the live page, fetched server-side from wallet's `GET /wallets` and
 * storage's `GET /stock` (public reads, no admin token), so the page talks to registry only:
 * no CORS in the split deployment, and it works wherever the services' addresses are internal.
 */
import { z } from "zod";

const WalletsReply = z.object({ wallets: z.array(z.object({ user_id: z.number().int(), balance_cents: z.number().int() })) });
const StockReply = z.object({
  stock: z.array(z.object({ product_id: z.number().int(), available: z.number().int(), reserved: z.number().int() })),
});

/** What the page shows beside the orders. */
export interface Overview {
  wallets: z.infer<typeof WalletsReply>["wallets"];
  wallets_total: number;
  stock: z.infer<typeof StockReply>["stock"];
  stock_total: number;
  /** Services that could not be asked, with why. */
  unavailable: { service: "wallet" | "storage"; message: string }[];
  fetched_at: string;
}

/** Rows of each list sent at most (lowest ids first). */
const OVERVIEW_ROWS = 200;

/** The overview, cached for `ttlMs` and fetched once however many pages ask at the same time. */
export function createOverview(
  peers: () => { wallet: string; storage: string },
  opts: { ttlMs: number; timeoutMs: number } = { ttlMs: 500, timeoutMs: 3000 },
): () => Promise<Overview> {
  let cached: { at: number; value: Promise<Overview> } | null = null;
  return () => {
    if (cached && Date.now() - cached.at < opts.ttlMs) return cached.value;
    const value = fetchOverview(peers(), opts.timeoutMs);
    cached = { at: Date.now(), value };
    return value;
  };
}

async function fetchOverview(urls: { wallet: string; storage: string }, timeoutMs: number): Promise<Overview> {
  const unavailable: Overview["unavailable"] = [];
  const ask = async <S extends z.ZodType>(service: "wallet" | "storage", url: string, schema: S): Promise<z.infer<S> | null> => {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: "application/json" } });
      if (!res.ok) throw new Error(`answered ${res.status}`);
      const parsed = schema.safeParse(await res.json());
      if (!parsed.success) throw new Error("answered an unexpected body");
      return parsed.data;
    } catch (err) {
      const why =
        err instanceof Error && err.name === "TimeoutError"
          ? `no answer within ${timeoutMs} ms`
          : err instanceof Error && err.message.startsWith("answered")
            ? err.message
            : "unreachable";
      unavailable.push({ service, message: `${service} ${why}` });
      return null;
    }
  };
  const [wallets, stock] = await Promise.all([
    ask("wallet", `${urls.wallet}/wallets`, WalletsReply),
    ask("storage", `${urls.storage}/stock`, StockReply),
  ]);
  const w = (wallets?.wallets ?? []).sort((a, b) => a.user_id - b.user_id);
  const s = (stock?.stock ?? []).sort((a, b) => a.product_id - b.product_id);
  return {
    wallets: w.slice(0, OVERVIEW_ROWS).map(({ user_id, balance_cents }) => ({ user_id, balance_cents })),
    wallets_total: w.length,
    stock: s.slice(0, OVERVIEW_ROWS).map(({ product_id, available, reserved }) => ({ product_id, available, reserved })),
    stock_total: s.length,
    unavailable,
    fetched_at: new Date().toISOString(),
  };
}
