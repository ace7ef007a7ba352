/**
 * What an order costs the database: statements (BEGIN and COMMIT included) from `POST /orders`
 * to its final state, counted by the database handle itself. Guards the round-trip budget.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { eventually } from "./support/eventually";
import { adminHeaders, call, getJson } from "./support/http";
import { type PostgresCluster, startPostgresCluster } from "./support/postgres-cluster";
import { createDatabase, startInProcess } from "./support/shop-target";

/**
 * Before the batched bus, an order cost 55 statements on PGlite and 51 on PostgreSQL (one at a
 * time); with it, about 28 and 34; with set-based handlers, POST /orders in one statement and the
 * inbox and its locks in one, about 20 on both.
 */
const BUDGET = { pglite: 21, postgres: 21 };
const ORDERS = 20;

let cluster: PostgresCluster | null = null;
afterAll(async () => {
  await cluster?.stop();
});

const backends: [keyof typeof BUDGET, () => Promise<Record<string, string>>][] = [
  ["pglite", async () => ({})],
  ["postgres", async () => ({ DATABASE_URL: await createDatabase((cluster ??= await startPostgresCluster({ name: "statements" })).url) })],
];

describe.each(backends)("statements per order (%s)", (name, env) => {
  test(`an order from POST to completed stays within ${BUDGET[name]} statements`, async () => {
    const t = await startInProcess(await env());
    try {
      const stats = t.shop.db.stats;
      await call(t.urls.wallet, "POST", "/wallets/77/deposits", { amount_cents: 1_000_000 }, adminHeaders);
      await call(t.urls.storage, "POST", "/stock/77/receipts", { quantity: 1000 }, adminHeaders);
      // What one status read costs, so the polling below can be taken out of the count.
      const id = (await call(t.urls.registry, "POST", "/orders", { user_id: 77, items: [{ product_id: 77, quantity: 1 }] })).body.id;
      await eventually(async () => (await getJson(t.urls.registry, `/orders/${id}`)).status === "completed");
      const costs: number[] = [];
      for (let i = 0; i < 5; i++) {
        const before = stats.statements;
        await getJson(t.urls.registry, `/orders/${id}`);
        costs.push(stats.statements - before);
      }
      const perRead = Math.min(...costs);

      let reads = 0;
      const start = stats.statements;
      for (let i = 0; i < ORDERS; i++) {
        const r = await call(t.urls.registry, "POST", "/orders", { user_id: 77, items: [{ product_id: 77, quantity: 1 }] });
        expect(r.status).toBe(201);
        await eventually(async () => {
          reads += 1;
          return (await getJson(t.urls.registry, `/orders/${r.body.id}`)).status === "completed";
        });
      }
      const perOrder = (stats.statements - start - reads * perRead) / ORDERS;
      console.log(`${name}: ${perOrder.toFixed(1)} statements per order (one at a time; ${perRead} per status read taken out)`);
      expect(perOrder).toBeLessThanOrEqual(BUDGET[name]);
    } finally {
      await t.stop();
    }
  });
});
