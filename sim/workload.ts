/** What a run starts from and places, drawn from the seed: users' balances, products' stock, and the orders. */
import type { Random } from "./random";

const USERS = 8;
const PRODUCTS = 12;

/** One order a client places: a user buying 1-3 products. */
export interface OrderRequest {
  user_id: number;
  items: { product_id: number; quantity: number }[];
}

/** The run's seeded data: wallet balances and stock as the modules' config, and the orders in the order placed. */
export interface Workload {
  balances: { user_id: number; balance_cents: number }[];
  stock: { product_id: number; available: number }[];
  orders: OrderRequest[];
}

/** Draws the workload from `work`: balances (some empty), stock (some sold out), then `orders` orders. */
export function drawWorkload(work: Random, orders: number): Workload {
  const balances = Array.from({ length: USERS }, (_, i) => ({ user_id: i + 1, balance_cents: work.int(0, 12) * 100_000 }));
  const stock = Array.from({ length: PRODUCTS }, (_, i) => ({ product_id: i + 1, available: work.int(0, 6) * 10 }));
  return { balances, stock, orders: Array.from({ length: orders }, () => drawOrder(work)) };
}

/** One order: 1-3 distinct products, 1-2 units each, for a user. */
function drawOrder(work: Random): OrderRequest {
  const n = work.int(1, 3);
  const products = new Set<number>();
  while (products.size < n) products.add(work.int(1, PRODUCTS));
  return { user_id: work.int(1, USERS), items: [...products].map((product_id) => ({ product_id, quantity: work.int(1, 2) })) };
}
