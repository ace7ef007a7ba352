/**
 * Registry's products: seeded from the config, and held in memory so that `GET /products` and
 * pricing read no table. A checksum of the table, taken in the background at most every
 * `checkEveryMs` (and at once for an unknown id), tells whether anything changed it (another
 * process, an operator's SQL) since it was loaded.
 */
import { asc, sql } from "drizzle-orm";
import type { Database } from "../../src/db/database";
import { work } from "../../src/work-counters";
import { products } from "./schema";
import { productView } from "./views";

/** A checksum of every product's fields: any insert, edit or delete changes it. */
const versionOf = sql<string>`coalesce(md5(string_agg(concat_ws(':', ${products.id}, ${products.priceCents}, ${products.sku}, ${products.name}), ',' order by ${products.id})), '')`;

type ProductView = ReturnType<typeof productView>;

/** Inserts catalogue entries that are not there yet. */
export async function seedProducts(db: Database, seed: { id: number; sku: string; name: string; price_cents: number }[]) {
  if (seed.length === 0) return;
  await db.transaction((tx) =>
    tx
      .insert(products)
      .values(seed.map((p) => ({ id: p.id, sku: p.sku, name: p.name, priceCents: p.price_cents })))
      .onConflictDoNothing(),
  );
}

/** The whole catalogue by id. */
export async function listProducts(db: Database) {
  const rows = await db.read((q) => q.select().from(products).orderBy(asc(products.id)));
  return rows.map(productView);
}

/** The cached catalogue. */
export interface Catalogue {
  /** Every product by id, and the `GET /products` body ready to send. */
  current(): Promise<{ byId: Map<number, ProductView>; body: string }>;
  /** The products with these ids that exist, re-reading the table once if any is unknown. */
  lookUp(ids: number[]): Promise<Map<number, ProductView>>;
}

/** Builds the catalogue cache over registry's products table. */
export function createCatalogue(db: Database, checkEveryMs = 5000): Catalogue {
  let snapshot: { byId: Map<number, ProductView>; body: string; version: string } | null = null;
  let checkedAt = 0;
  let checking: Promise<void> | null = null;

  const version = async () => {
    work.catalogue_checks += 1;
    const [row] = await db.read((q) => q.select({ v: versionOf }).from(products));
    return row?.v ?? "";
  };

  const load = async () => {
    const v = await version();
    const list = await listProducts(db);
    snapshot = { byId: new Map(list.map((p) => [p.id, p])), body: JSON.stringify({ products: list }), version: v };
    checkedAt = Date.now();
  };

  const check = () =>
    (checking ??= (async () => {
      try {
        if ((await version()) !== snapshot?.version) await load();
        else checkedAt = Date.now();
      } finally {
        checking = null;
      }
    })());

  const current = async () => {
    if (!snapshot) await load();
    else if (Date.now() - checkedAt > checkEveryMs) void check().catch(() => {});
    return snapshot as NonNullable<typeof snapshot>;
  };

  return {
    current,
    async lookUp(ids) {
      let { byId } = await current();
      if (ids.some((id) => !byId.has(id))) {
        await check();
        ({ byId } = await current());
      }
      return new Map(ids.flatMap((id) => (byId.has(id) ? [[id, byId.get(id) as ProductView]] : [])));
    },
  };
}
