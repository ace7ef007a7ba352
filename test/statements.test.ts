/**
 * What an order costs the database: statements (BEGIN and COMMIT included) from `POST /orders`
 * to its final state, counted by the database handle itself. Guards the round-trip budget.
 *
 * The count is exact whatever the machine's load: orders go one at a time, and the next one is
 * posted only once the last has completed and the relays have marked every row they sent
 * published (so no order's marks share a statement with the next order's, whatever the timing);
 * consumers take each record as it comes (BUS_LINGER_MS=0: a batch is what one publish carried,
 * never two hops that happened to arrive within the linger); and what runs while the orders go
 * through but is owed to none of them is left out by its own counter (src/work-counters.ts):
 * the periodic jobs' statements (deadline sweeps, retention, elections) and the relay's claims
 * that found no row (its safety-net poll, a nudge that came after the row was taken). The
 * status reads of the test's own polling are taken out at their measured cost.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { work } from "../src/work-counters";
import { eventually } from "./support/eventually";
import { adminHeaders, call, getJson } from "./support/http";
import { type PostgresCluster, startPostgresCluster } from "./support/postgres-cluster";
import { createDatabase, startInProcess } from "./support/shop-target";

/**
 * Statements of one order, one at a time, each hop a batch of its own: 27 on both (POST 1; wallet's
 * and storage's batches 5 each; registry's two StepSucceeded batches 5 each; a claim and a mark per
 * outbox, 6). The old count (about 20-22, varying with the load) let marks and batches of
 * neighbouring orders share statements when they happened to come close. Lower it when an order
 * gets cheaper: the printed figure is exact.
 */
const BUDGET = { pglite: 27, postgres: 27 };
const ORDERS = 10;

let cluster: PostgresCluster | null = null;
afterAll(async () => {
  await cluster?.stop();
});

const backends: [keyof typeof BUDGET, () => Promise<Record<string, string>>][] = [
  ["pglite", async () => ({})],
  ["postgres", async () => ({ DATABASE_URL: await createDatabase((cluster ??= await startPostgresCluster({ name: "statements" })).url) })],
];

/**
 * Every row a relay claimed since `from` has been marked published (or released): no order's
 * statements are still to come. Counted from `from`: the counters are the process's, and shops
 * of other test files may have stopped with rows in flight.
 */
const relaysSettled = (from: typeof work) => () =>
  work.relay_rows_marked - from.relay_rows_marked + work.relay_rows_released - from.relay_rows_released ===
  work.relay_rows_claimed - from.relay_rows_claimed;

/**
 * Statements since `from` owed to no order: periodic jobs, relay claims that found no row, and
 * the reads whose rate the clock caps (admission: one per 200 ms at most; catalogue: one per 5 s).
 */
const notOwed = (from: typeof work) =>
  work.periodic_statements -
  from.periodic_statements +
  work.relay_empty_claims -
  from.relay_empty_claims +
  work.admission_reads -
  from.admission_reads +
  work.catalogue_checks -
  from.catalogue_checks;

describe.each(backends)("statements per order (%s)", (name, env) => {
  test(`an order from POST to completed costs at most ${BUDGET[name]} statements, counted exactly`, async () => {
    const t = await startInProcess({ ...(await env()), BUS_LINGER_MS: "0" });
    const initial = { ...work };
    try {
      const stats = t.shop.db.stats;
      const order = { user_id: 77, items: [{ product_id: 77, quantity: 1 }] };
      await call(t.urls.wallet, "POST", "/wallets/77/deposits", { amount_cents: 1_000_000 }, adminHeaders);
      await call(t.urls.storage, "POST", "/stock/77/receipts", { quantity: 1000 }, adminHeaders);
      // What one status read costs, so the polling below can be taken out of the count.
      const id = (await call(t.urls.registry, "POST", "/orders", order)).body.id;
      await eventually(async () => (await getJson(t.urls.registry, `/orders/${id}`)).status === "completed");
      await eventually(relaysSettled(initial));
      const costs: number[] = [];
      for (let i = 0; i < 5; i++) {
        const before = { ...work, statements: stats.statements };
        await getJson(t.urls.registry, `/orders/${id}`);
        costs.push(stats.statements - before.statements - notOwed(before));
      }
      const perRead = Math.min(...costs);

      let reads = 0;
      const start = { ...work, statements: stats.statements };
      for (let i = 0; i < ORDERS; i++) {
        const r = await call(t.urls.registry, "POST", "/orders", order);
        expect(r.status).toBe(201);
        await eventually(async () => {
          reads += 1;
          return (await getJson(t.urls.registry, `/orders/${r.body.id}`)).status === "completed";
        });
        await eventually(relaysSettled(initial));
      }
      const left = notOwed(start);
      const owed = stats.statements - start.statements - left - reads * perRead;
      console.log(
        `${name}: ${owed / ORDERS} statements per order (${owed} for ${ORDERS} orders, one at a time; left out: ` +
          `${reads} status reads at ${perRead}; ${left} of periodic jobs, empty relay claims, admission and catalogue checks)`,
      );
      // Exact: every order costs the same (a fraction means something timing-dependent was counted).
      expect(owed % ORDERS).toBe(0);
      expect(owed / ORDERS).toBeLessThanOrEqual(BUDGET[name]);
    } finally {
      await t.stop();
    }
  });
});
