/**
 * The OpenAPI documents tell the truth: each is valid OpenAPI 3.1; every example matches its own
 * schema; every error response lists its codes as an enum with one example each; ids are
 * integers; every route and field is described; `servers` names the service; and what a running
 * shop answers to bad requests (statuses, codes, Location, Idempotent-Replayed) is what its
 * document says.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Validator } from "@seriousme/openapi-schema-validator";
import Ajv2020 from "ajv/dist/2020";
import addFormats from "ajv-formats";
import { Hono } from "hono";
import { registryModule } from "../modules/registry";
import { storageModule } from "../modules/storage";
import { walletModule } from "../modules/wallet";
import type { ErrorCodes } from "../src/errors";
import { KIND_STATUS, SHELL_ERRORS } from "../src/http/errors";
import { readinessGate } from "../src/http/health";
import { IDEMPOTENCY_ERRORS } from "../src/idempotency";
import { DEAD_LETTER_ERRORS } from "../src/messaging/dead-letters";
import { adminHeaders, call, getJson, type Reply } from "./support/http";
import { type ShopTarget, startInProcess } from "./support/shop-target";

type Service = keyof ShopTarget["urls"];
type Json = Record<string, any>;

const METHODS = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];

let t: ShopTarget;
const docs = {} as Record<Service, Json>;
beforeAll(async () => {
  t = await startInProcess();
  for (const service of Object.keys(t.urls) as Service[]) docs[service] = await getJson(t.urls[service], "/openapi.json");
});
afterAll(() => t.stop());

const services = (): [Service, Json][] => Object.entries(docs) as [Service, Json][];

/** Every operation of a document: path, method and the operation object. */
function operations(doc: Json): { path: string; method: string; op: Json }[] {
  const out: { path: string; method: string; op: Json }[] = [];
  for (const [path, item] of Object.entries<Json>(doc.paths ?? {})) {
    for (const method of METHODS) if (item[method]) out.push({ path, method, op: item[method] });
  }
  return out;
}

/** Every route is held to the example and description checks. */
const checked = (_path: string) => true;

/** The nodes of an operation and of every component schema it refers to, with their pointers. */
function* operationNodes(doc: Json, path: string, method: string): Generator<[Json, string]> {
  const seen = new Set<string>();
  const pending = [`/paths/${path.replaceAll("~", "~0").replaceAll("/", "~1")}/${method}`];
  for (let pointer = pending.pop(); pointer !== undefined; pointer = pending.pop()) {
    if (seen.has(pointer)) continue;
    seen.add(pointer);
    const node = pointer
      .split("/")
      .slice(1)
      .reduce<Json>((n, k) => n?.[k.replaceAll("~1", "/").replaceAll("~0", "~")], doc);
    for (const [n, p] of walk(node, pointer)) {
      yield [n, p];
      if (typeof n.$ref === "string" && n.$ref.startsWith("#/")) pending.push(n.$ref.slice(1));
    }
  }
}

/** Every node of a JSON value with its JSON pointer. */
function* walk(node: unknown, pointer = ""): Generator<[Json, string]> {
  if (node === null || typeof node !== "object") return;
  yield [node as Json, pointer];
  for (const [key, value] of Object.entries(node)) yield* walk(value, `${pointer}/${key.replaceAll("~", "~0").replaceAll("/", "~1")}`);
}

const DOC_ID = "https://shop.invalid/openapi.json";

/** A validator of values against the schema at a pointer of `doc` (its $refs resolved within it). */
function schemaChecker(doc: Json) {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema({ ...doc, $id: DOC_ID });
  return (pointer: string, value: unknown): string[] => {
    const validate = ajv.getSchema(`${DOC_ID}#${pointer}`);
    if (!validate) return [`no schema at ${pointer}`];
    return validate(value) ? [] : (validate.errors ?? []).map((e) => `${pointer}${e.instancePath} ${e.message}`);
  };
}

describe("the documents", () => {
  test("each is valid OpenAPI 3.1; its one server is relative (the service it came from), whatever Host the request named", async () => {
    for (const [service, doc] of services()) {
      const result = await new Validator().validate(doc);
      expect([service, result.errors ?? []]).toEqual([service, []]);
      expect(doc.openapi).toBe("3.1.0");
      expect(doc.servers).toEqual([{ url: "/", description: expect.any(String) }]);
      const foreign = await (await fetch(`${t.urls[service]}/openapi.json`, { headers: { host: "evil.example:666" } })).text();
      expect(foreign).not.toContain("evil.example");
      expect(doc.info.description).toContain("405 `method_not_allowed`");
    }
  });

  test("every example (schemas, parameters, headers, bodies, responses) matches its own schema", () => {
    for (const [service, doc] of services()) {
      const check = schemaChecker(doc);
      const failures: string[] = [];
      let checked = 0;
      for (const [node, pointer] of walk(doc)) {
        const inSchema = pointer.includes("/schema") || pointer.startsWith("/components/schemas/");
        if (node.schema && typeof node.schema === "object") {
          // A media type, parameter or header: its example(s) against its schema.
          if ("example" in node) checked++, failures.push(...check(`${pointer}/schema`, node.example));
          for (const [name, ex] of Object.entries<Json>(node.examples ?? {})) {
            checked++;
            failures.push(...check(`${pointer}/schema`, ex.value).map((f) => `${f} (example ${name})`));
          }
        } else if (inSchema && "example" in node && !pointer.endsWith("/properties")) {
          checked++;
          failures.push(...check(pointer, node.example));
        }
      }
      expect([service, failures]).toEqual([service, []]);
      expect(checked).toBeGreaterThan(20);
    }
  });

  test("every JSON request body and JSON response has an example", () => {
    for (const [service, doc] of services()) {
      const missing: string[] = [];
      for (const { path, method, op } of operations(doc)) {
        if (!checked(path)) continue;
        const bodies: [string, Json | undefined][] = [
          ["request", op.requestBody?.content?.["application/json"]],
          ...Object.entries<Json>(op.responses ?? {}).map(([status, r]): [string, Json | undefined] => [
            status,
            r.content?.["application/json"],
          ]),
        ];
        for (const [which, media] of bodies) {
          if (media && media.example === undefined && Object.keys(media.examples ?? {}).length === 0)
            missing.push(`${method} ${path} ${which}`);
        }
      }
      expect([service, missing]).toEqual([service, []]);
    }
  });

  test("every error response lists exactly its codes as an enum, each with an example that uses it", () => {
    for (const [service, doc] of services()) {
      const problems: string[] = [];
      for (const { path, method, op } of operations(doc)) {
        const where = `${method} ${path}`;
        expect([where, op.responses["500"]?.content?.["application/json"]?.schema?.properties?.error?.properties?.code?.enum]).toEqual([
          where,
          ["internal_error"],
        ]);
        for (const [status, response] of Object.entries<Json>(op.responses)) {
          if (Number(status) < 400 || !response.content?.["application/json"]) continue;
          if (path.startsWith("/health") && status === "503") continue; // the health report itself, not an error body
          const media = response.content["application/json"];
          const codes: unknown = media.schema?.properties?.error?.properties?.code?.enum;
          if (!Array.isArray(codes) || codes.length === 0) {
            problems.push(`${where} ${status}: code is not an enum`);
            continue;
          }
          const exampleCodes = Object.entries<Json>(media.examples ?? {}).map(([name, ex]) => {
            if (ex.value?.error?.code !== name) problems.push(`${where} ${status}: example ${name} has code ${ex.value?.error?.code}`);
            return name;
          });
          if (JSON.stringify([...exampleCodes].sort()) !== JSON.stringify([...codes].sort())) {
            problems.push(`${where} ${status}: examples ${exampleCodes} for codes ${codes}`);
          }
          for (const code of codes)
            if (!String(response.description).includes(`\`${code}\``)) problems.push(`${where} ${status}: ${code} not described`);
        }
        if (op.security?.some((s: Json) => "adminToken" in s) && !op.responses["401"]) problems.push(`${where}: admin route without 401`);
        if (op.requestBody?.content?.["application/json"]) {
          for (const s of ["400", "413", "415", "503"]) if (!op.responses[s]) problems.push(`${where}: JSON body without ${s}`);
        }
        if (["post", "put", "patch", "delete"].includes(method) && !codesOf(op, 503).includes("not_ready"))
          problems.push(`${where}: write without 503 not_ready`);
      }
      expect([service, problems]).toEqual([service, []]);
    }
  });

  test("ids are integers (orders' are UUIDs), in bodies, responses and parameters", () => {
    for (const [service, doc] of services()) {
      const wrong: string[] = [];
      for (const [node, pointer] of walk(doc)) {
        for (const [name, schema] of Object.entries<Json>(node.properties ?? {})) {
          if (!/(^|_)id$/.test(name) || schema.$ref) continue;
          // Integers, or strings (orders' UUIDs); never a float.
          const types = [schema.type].flat();
          if (types.includes("number") || !(types.includes("integer") || types.includes("string")))
            wrong.push(`${pointer}/properties/${name}: ${JSON.stringify(schema)}`);
        }
      }
      for (const { path, method, op } of operations(doc)) {
        for (const p of op.parameters ?? []) {
          if (/(^|_)id$/.test(p.name) && p.schema.type !== "integer" && p.schema.format !== "uuid")
            wrong.push(`${method} ${path} ${p.name}`);
          if (["limit", "cursor"].includes(p.name) && p.schema.type !== "integer") wrong.push(`${method} ${path} ${p.name}`);
        }
      }
      expect([service, wrong]).toEqual([service, []]);
    }
  });

  test("every route has a summary and a description, and every schema property a description", () => {
    for (const [service, doc] of services()) {
      const missing = new Set<string>();
      for (const { path, method, op } of operations(doc)) {
        if (!checked(path)) continue;
        if (!op.summary) missing.add(`${method} ${path}: summary`);
        if (!op.description) missing.add(`${method} ${path}: description`);
        for (const p of op.parameters ?? [])
          if (!p.description && !p.schema?.description) missing.add(`${method} ${path}: parameter ${p.name}`);
        for (const [node, pointer] of operationNodes(doc, path, method)) {
          for (const [name, schema] of Object.entries<Json>(node.properties ?? {})) {
            // A $ref names a component, described where it is defined.
            if (!schema.description && !schema.$ref) missing.add(`${pointer}/properties/${name}`);
          }
        }
      }
      expect([service, [...missing]]).toEqual([service, []]);
    }
  });
});

/**
 * The codes each service's code can throw, as declared (src/errors.ts, declareErrors): its
 * module's own, a redrive's (every service has the dead-letter admin routes) and a keyed write's.
 */
const DECLARED: Record<Service, ErrorCodes<string>[]> = {
  registry: [registryModule.errors, DEAD_LETTER_ERRORS, IDEMPOTENCY_ERRORS],
  wallet: [walletModule.errors, DEAD_LETTER_ERRORS, IDEMPOTENCY_ERRORS],
  storage: [storageModule.errors, DEAD_LETTER_ERRORS, IDEMPOTENCY_ERRORS],
};

/** Refusals the live page answers itself (modules/registry/live/index.ts: Retry-After 5, and a 429), not thrown as DomainErrors. */
const LIVE_REFUSALS = ["too_many_clients", "too_many_clients_from_address"];

/** Every documented error code of a document: code, status and the example it shows. */
function documentedCodes(doc: Json): { where: string; status: string; code: string; example: Json | undefined }[] {
  const out: { where: string; status: string; code: string; example: Json | undefined }[] = [];
  for (const { path, method, op } of operations(doc)) {
    for (const [status, response] of Object.entries<Json>(op.responses)) {
      if (Number(status) < 400 || (path.startsWith("/health") && status === "503")) continue;
      const media = response.content?.["application/json"];
      for (const code of media?.schema?.properties?.error?.properties?.code?.enum ?? []) {
        out.push({ where: `${method} ${path}`, status, code, example: media.examples?.[code]?.value?.error });
      }
    }
  }
  return out;
}

describe("declared error codes and the documents come from one source", () => {
  test("every code a service can throw is documented, under the status of its kind, with its declared example", () => {
    for (const [service, doc] of services()) {
      const documented = documentedCodes(doc);
      const missing: string[] = [];
      for (const codes of DECLARED[service]) {
        for (const code of codes.codes) {
          const { kind, message, field } = codes.declared[code] as Json;
          const status = String(KIND_STATUS[kind as keyof typeof KIND_STATUS]);
          const found = documented.filter((d) => d.code === code && d.status === status);
          if (found.length === 0) missing.push(`${codes.owner} ${code}: no route documents it under ${status}`);
          for (const d of found) {
            if (JSON.stringify(d.example) !== JSON.stringify(field === undefined ? { code, message } : { code, message, field })) {
              missing.push(`${d.where} ${status} ${code}: example ${JSON.stringify(d.example)} is not the declared one`);
            }
          }
        }
      }
      expect([service, missing]).toEqual([service, []]);
    }
  });

  test("every documented code is the shell's or declared by what the service runs (no stale or hand-written code)", () => {
    for (const [service, doc] of services()) {
      const known = new Set([...Object.keys(SHELL_ERRORS), ...LIVE_REFUSALS, ...DECLARED[service].flatMap((c) => c.codes)]);
      const stray = documentedCodes(doc)
        .filter((d) => !known.has(d.code))
        .map((d) => `${d.where} ${d.status} ${d.code}`);
      expect([service, stray]).toEqual([service, []]);
    }
  });

  test("a provoked declared code gets the status of its declared kind (the provocations below check the running shop gives it)", () => {
    const checked: string[] = [];
    for (const p of provocations) {
      const codes = DECLARED[p.service].find((c) => c.codes.includes(p.code));
      if (!codes) continue;
      const kind = (codes.declared[p.code] as Json).kind as keyof typeof KIND_STATUS;
      expect([p.name, p.status]).toEqual([p.name, KIND_STATUS[kind]]);
      checked.push(p.code);
    }
    expect(new Set(checked)).toEqual(
      new Set(["unknown_product", "duplicate_product", "unknown_order", "unknown_wallet", "unknown_dead_letter"]),
    );
  });
});

/** The codes an operation documents for a status. */
function codesOf(op: Json, status: number): string[] {
  return op.responses?.[String(status)]?.content?.["application/json"]?.schema?.properties?.error?.properties?.code?.enum ?? [];
}

/** A bad request to provoke, the documented route it reaches, and the status it must get. */
interface Provocation {
  name: string;
  service: Service;
  method: string;
  /** The documented path template. */
  route: string;
  path: string;
  status: number;
  code: string;
  field?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

const big = (fields: Json) => ({ ...fields, pad: "x".repeat(1_100_000) }); // past the default 1 MiB body limit
const order = { user_id: 1, items: [{ product_id: 1, quantity: 1 }] };
const text = { "content-type": "text/plain" };
const adminText = { ...adminHeaders, "content-type": "text/plain" };

const provocations: Provocation[] = [
  // registry
  {
    name: "order with quantity 0",
    service: "registry",
    method: "POST",
    route: "/orders",
    path: "/orders",
    body: { user_id: 1, items: [{ product_id: 1, quantity: 0 }] },
    status: 400,
    code: "invalid_request",
    field: "items.0.quantity",
  },
  {
    name: "order, malformed JSON",
    service: "registry",
    method: "POST",
    route: "/orders",
    path: "/orders",
    body: '{"user_id":',
    status: 400,
    code: "malformed_json",
  },
  {
    name: "order, bad Idempotency-Key",
    service: "registry",
    method: "POST",
    route: "/orders",
    path: "/orders",
    body: order,
    headers: { "idempotency-key": "k".repeat(256) },
    status: 400,
    code: "invalid_request",
    field: "Idempotency-Key",
  },
  {
    name: "order, body too large",
    service: "registry",
    method: "POST",
    route: "/orders",
    path: "/orders",
    body: big(order),
    status: 413,
    code: "payload_too_large",
  },
  {
    name: "order as text/plain",
    service: "registry",
    method: "POST",
    route: "/orders",
    path: "/orders",
    body: JSON.stringify(order),
    headers: text,
    status: 415,
    code: "unsupported_media_type",
  },
  {
    name: "order, unknown product",
    service: "registry",
    method: "POST",
    route: "/orders",
    path: "/orders",
    body: { user_id: 1, items: [{ product_id: 4242, quantity: 1 }] },
    status: 422,
    code: "unknown_product",
    field: "items.0.product_id",
  },
  {
    name: "order, a product twice",
    service: "registry",
    method: "POST",
    route: "/orders",
    path: "/orders",
    body: {
      user_id: 1,
      items: [
        { product_id: 1, quantity: 1 },
        { product_id: 1, quantity: 2 },
      ],
    },
    status: 422,
    code: "duplicate_product",
    field: "items.1.product_id",
  },
  {
    name: "orders, limit 0",
    service: "registry",
    method: "GET",
    route: "/orders",
    path: "/orders?limit=0",
    status: 400,
    code: "invalid_request",
    field: "limit",
  },
  {
    name: "orders, user_id 1e2",
    service: "registry",
    method: "GET",
    route: "/orders",
    path: "/orders?user_id=1e2",
    status: 400,
    code: "invalid_request",
    field: "user_id",
  },
  {
    name: "orders, limit 1e1",
    service: "registry",
    method: "GET",
    route: "/orders",
    path: "/orders?limit=1e1",
    status: 400,
    code: "invalid_request",
    field: "limit",
  },
  {
    name: "order id not a UUID",
    service: "registry",
    method: "GET",
    route: "/orders/{id}",
    path: "/orders/42",
    status: 400,
    code: "invalid_request",
    field: "id",
  },
  {
    name: "unknown order",
    service: "registry",
    method: "GET",
    route: "/orders/{id}",
    path: `/orders/${crypto.randomUUID()}`,
    status: 404,
    code: "unknown_order",
    field: "id",
  },
  {
    name: "stuck sagas without a token",
    service: "registry",
    method: "GET",
    route: "/admin/sagas/stuck",
    path: "/admin/sagas/stuck",
    status: 401,
    code: "unauthorized",
  },
  {
    name: "stuck sagas, limit 0",
    service: "registry",
    method: "GET",
    route: "/admin/sagas/stuck",
    path: "/admin/sagas/stuck?limit=0",
    headers: adminHeaders,
    status: 400,
    code: "invalid_request",
    field: "limit",
  },
  {
    name: "shop audit without a token",
    service: "registry",
    method: "GET",
    route: "/admin/audit",
    path: "/admin/audit",
    status: 401,
    code: "unauthorized",
  },
  {
    name: "dead letters, limit 1e1",
    service: "registry",
    method: "GET",
    route: "/admin/dead-letters",
    path: "/admin/dead-letters?limit=1e1",
    headers: adminHeaders,
    status: 400,
    code: "invalid_request",
    field: "limit",
  },
  {
    name: "redrive of an unknown dead letter",
    service: "registry",
    method: "POST",
    route: "/admin/dead-letters/{id}/redrive",
    path: "/admin/dead-letters/987654/redrive",
    headers: adminHeaders,
    status: 404,
    code: "unknown_dead_letter",
    field: "id",
  },
  {
    name: "redrive, id 1e2",
    service: "registry",
    method: "POST",
    route: "/admin/dead-letters/{id}/redrive",
    path: "/admin/dead-letters/1e2/redrive",
    headers: adminHeaders,
    status: 400,
    code: "invalid_request",
    field: "id",
  },
  {
    name: "health, timeout abc",
    service: "registry",
    method: "GET",
    route: "/health",
    path: "/health?timeout=abc",
    status: 400,
    code: "invalid_request",
    field: "timeout",
  },
  // wallet
  ...["1e2", "0x10", "007", "+1", "1.0", "%201", "0", "-1", "99999999999"].map(
    (id): Provocation => ({
      name: `wallet id ${id}`,
      service: "wallet",
      method: "GET",
      route: "/wallets/{user_id}",
      path: `/wallets/${id}`,
      status: 400,
      code: "invalid_request",
      field: "user_id",
    }),
  ),
  {
    name: "unknown wallet",
    service: "wallet",
    method: "GET",
    route: "/wallets/{user_id}",
    path: "/wallets/424242",
    status: 404,
    code: "unknown_wallet",
    field: "user_id",
  },
  {
    name: "deposit without a token",
    service: "wallet",
    method: "POST",
    route: "/wallets/{user_id}/deposits",
    path: "/wallets/1/deposits",
    body: { amount_cents: 1 },
    status: 401,
    code: "unauthorized",
  },
  {
    name: "deposit to wallet 1e2",
    service: "wallet",
    method: "POST",
    route: "/wallets/{user_id}/deposits",
    path: "/wallets/1e2/deposits",
    body: { amount_cents: 1 },
    headers: adminHeaders,
    status: 400,
    code: "invalid_request",
    field: "user_id",
  },
  {
    name: "deposit of 0",
    service: "wallet",
    method: "POST",
    route: "/wallets/{user_id}/deposits",
    path: "/wallets/1/deposits",
    body: { amount_cents: 0 },
    headers: adminHeaders,
    status: 400,
    code: "invalid_request",
    field: "amount_cents",
  },
  {
    name: "deposit, malformed JSON",
    service: "wallet",
    method: "POST",
    route: "/wallets/{user_id}/deposits",
    path: "/wallets/1/deposits",
    body: "{",
    headers: adminHeaders,
    status: 400,
    code: "malformed_json",
  },
  {
    name: "deposit too large",
    service: "wallet",
    method: "POST",
    route: "/wallets/{user_id}/deposits",
    path: "/wallets/1/deposits",
    body: big({ amount_cents: 1 }),
    headers: adminHeaders,
    status: 413,
    code: "payload_too_large",
  },
  {
    name: "deposit as text/plain",
    service: "wallet",
    method: "POST",
    route: "/wallets/{user_id}/deposits",
    path: "/wallets/1/deposits",
    body: '{"amount_cents":1}',
    headers: adminText,
    status: 415,
    code: "unsupported_media_type",
  },
  // storage
  {
    name: "stock of product 1e2",
    service: "storage",
    method: "GET",
    route: "/stock/{product_id}",
    path: "/stock/1e2",
    status: 400,
    code: "invalid_request",
    field: "product_id",
  },
  {
    name: "stock of an unknown product",
    service: "storage",
    method: "GET",
    route: "/stock/{product_id}",
    path: "/stock/999999",
    status: 404,
    code: "unknown_product",
    field: "product_id",
  },
  {
    name: "receipt without a token",
    service: "storage",
    method: "POST",
    route: "/stock/{product_id}/receipts",
    path: "/stock/1/receipts",
    body: { quantity: 1 },
    status: 401,
    code: "unauthorized",
  },
  {
    name: "receipt for an unknown product",
    service: "storage",
    method: "POST",
    route: "/stock/{product_id}/receipts",
    path: "/stock/999999/receipts",
    body: { quantity: 1 },
    headers: adminHeaders,
    status: 404,
    code: "unknown_product",
    field: "product_id",
  },
  {
    name: "receipt past the bound",
    service: "storage",
    method: "POST",
    route: "/stock/{product_id}/receipts",
    path: "/stock/1/receipts",
    body: { quantity: 1_000_001 },
    headers: adminHeaders,
    status: 400,
    code: "invalid_request",
    field: "quantity",
  },
  {
    name: "receipt too large",
    service: "storage",
    method: "POST",
    route: "/stock/{product_id}/receipts",
    path: "/stock/1/receipts",
    body: big({ quantity: 1 }),
    headers: adminHeaders,
    status: 413,
    code: "payload_too_large",
  },
  {
    name: "receipt as text/plain",
    service: "storage",
    method: "POST",
    route: "/stock/{product_id}/receipts",
    path: "/stock/1/receipts",
    body: '{"quantity":1}',
    headers: adminText,
    status: 415,
    code: "unsupported_media_type",
  },
  {
    name: "storage audit report without a token",
    service: "storage",
    method: "GET",
    route: "/admin/audit/report",
    path: "/admin/audit/report",
    status: 401,
    code: "unauthorized",
  },
];

/** The status and code `reply` got must be documented for `method route` of `doc`. */
function expectDocumented(doc: Json, method: string, route: string, reply: Reply<Json>) {
  const op = doc.paths[route]?.[method.toLowerCase()];
  expect(op).toBeDefined();
  expect([route, method, Object.keys(op.responses)]).toEqual([route, method, expect.arrayContaining([String(reply.status)])]);
  if (reply.status >= 400)
    expect([route, method, reply.status, codesOf(op, reply.status)]).toEqual([
      route,
      method,
      reply.status,
      expect.arrayContaining([reply.body.error.code]),
    ]);
}

describe("what a running shop answers is what its document says", () => {
  test.each(provocations.map((p) => [p.name, p] as const))("%s", async (_, p) => {
    const r = await call<Json>(t.urls[p.service], p.method, p.path, p.body, p.headers ?? {});
    expect({ status: r.status, code: r.body?.error?.code, field: r.body?.error?.field }).toEqual({
      status: p.status,
      code: p.code,
      field: p.field,
    });
    expectDocumented(docs[p.service], p.method, p.route, r);
  });

  test("the provocations reach every documented status except 409, 500 and 503 (not provoked here)", () => {
    const provoked = new Set(provocations.map((p) => `${p.service} ${p.method} ${p.route} ${p.status}`));
    for (const [service, doc] of services()) {
      for (const route of [
        "/orders",
        "/orders/{id}",
        "/wallets/{user_id}",
        "/wallets/{user_id}/deposits",
        "/stock/{product_id}",
        "/stock/{product_id}/receipts",
      ]) {
        for (const { path, method, op } of operations(doc)) {
          if (path !== route) continue;
          for (const status of Object.keys(op.responses)) {
            if (Number(status) < 400 || ["409", "500", "503"].includes(status)) continue;
            // 408 (a body that stalls) is provoked in test/hostile-http.test.ts; 422 idempotency_key_reused in the tests of 201 below.
            if (status === "408") continue;
            if (status === "422" && codesOf(op, 422).join() === "idempotency_key_reused") continue;
            expect(provoked).toContain(`${service} ${method.toUpperCase()} ${path} ${status}`);
          }
        }
      }
    }
  });

  test("an unknown path is 404 not_found and a known path with another method 405 method_not_allowed, as info.description says", async () => {
    const missing = await call<Json>(t.urls.registry, "GET", "/no-such-route");
    expect([missing.status, missing.body.error.code]).toEqual([404, "not_found"]);
    const wrong = await call<Json>(t.urls.registry, "PUT", "/orders", order);
    expect([wrong.status, wrong.body.error.code, wrong.headers.get("allow")]).toEqual([405, "method_not_allowed", "GET, HEAD, POST"]);
    expect(docs.registry.info.description).toContain("404 `not_found`");
  });

  test("201 of POST /orders: Location leads to the order (200); a replay says Idempotent-Replayed and has the same Location; another body is 422", async () => {
    const key = crypto.randomUUID();
    const body = { user_id: 1, items: [{ product_id: 1, quantity: 1 }] };
    const placed = await call<Json>(t.urls.registry, "POST", "/orders", body, { "idempotency-key": key });
    expect(placed.status).toBe(201);
    expectDocumented(docs.registry, "POST", "/orders", placed);
    const location = placed.headers.get("location");
    expect(location).toBe(`/orders/${placed.body.id}`);
    expect(placed.headers.get("idempotent-replayed")).toBeNull();
    const followed = await call<Json>(t.urls.registry, "GET", location ?? "");
    expect(followed.status).toBe(200);
    expect(followed.body).toMatchObject({ id: placed.body.id, user_id: 1, items: placed.body.items });
    const replayed = await call<Json>(t.urls.registry, "POST", "/orders", body, { "idempotency-key": key });
    expect([replayed.status, replayed.headers.get("idempotent-replayed"), replayed.headers.get("location")]).toEqual([
      201,
      "true",
      location,
    ]);
    expect(replayed.body.id).toBe(placed.body.id);
    const headers = docs.registry.paths["/orders"].post.responses["201"].headers;
    expect(Object.keys(headers)).toEqual(expect.arrayContaining(["Location", "Idempotent-Replayed"]));
    const reused = await call<Json>(t.urls.registry, "POST", "/orders", { ...body, user_id: 2 }, { "idempotency-key": key });
    expect([reused.status, reused.body.error.code, reused.body.error.field]).toEqual([422, "idempotency_key_reused", "Idempotency-Key"]);
    expectDocumented(docs.registry, "POST", "/orders", reused);
  });

  test("201 of deposits and receipts: Location leads to the wallet and the stock (200); with an Idempotency-Key a replay says Idempotent-Replayed, another body is 422", async () => {
    for (const [service, path, body, other] of [
      ["wallet", "/wallets/31337/deposits", { amount_cents: 500 }, { amount_cents: 501 }],
      ["storage", "/stock/3/receipts", { quantity: 2 }, { quantity: 3 }],
    ] as const) {
      const route = path.replace(/\d+/, service === "wallet" ? "{user_id}" : "{product_id}");
      const key = { ...adminHeaders, "idempotency-key": crypto.randomUUID() };
      const r = await call<Json>(t.urls[service], "POST", path, body, key);
      expect(r.status).toBe(201);
      expectDocumented(docs[service], "POST", route, r);
      const location = r.headers.get("location") ?? "";
      expect(location).toBe(path.replace(/\/[a-z]+$/, ""));
      expect(await getJson(t.urls[service], location)).toMatchObject(r.body);
      expect(Object.keys(docs[service].paths[route].post.responses["201"].headers)).toEqual(
        expect.arrayContaining(["Location", "Idempotent-Replayed"]),
      );
      const replayed = await call<Json>(t.urls[service], "POST", path, body, key);
      expect([replayed.status, replayed.headers.get("idempotent-replayed"), replayed.body]).toEqual([201, "true", r.body]);
      const reused = await call<Json>(t.urls[service], "POST", path, other, key);
      expect([reused.status, reused.body.error.code, reused.body.error.field]).toEqual([422, "idempotency_key_reused", "Idempotency-Key"]);
      expectDocumented(docs[service], "POST", route, reused);
    }
  });

  test("a write while the service is not ready gets 503 not_ready, which every write documents", async () => {
    // The shell's own gate (a started shop is ready, so it is exercised on its own).
    const app = new Hono().use(readinessGate(() => "starting: consumer groups joining")).post("/orders", (c) => c.text("placed"));
    const res = await app.request("/orders", { method: "POST" });
    const body = (await res.json()) as Json;
    expect([res.status, body.error.code, res.headers.get("retry-after")]).toEqual([503, "not_ready", expect.any(String)]);
    for (const [, doc] of services()) {
      for (const { method, op } of operations(doc)) if (method === "post") expect(codesOf(op, 503)).toContain("not_ready");
    }
  });

  test("the examples of the 2xx answers have the shape the API really gives", async () => {
    // Same keys, recursively, as a real answer of each read route.
    const shape = (v: unknown): unknown =>
      Array.isArray(v)
        ? v.length
          ? [shape(v[0])]
          : []
        : v !== null && typeof v === "object"
          ? Object.fromEntries(
              Object.keys(v)
                .sort()
                .map((k) => [k, shape((v as Json)[k])]),
            )
          : "value";
    const keysOf = (v: unknown): unknown => (v !== null && typeof v === "object" && !Array.isArray(v) ? Object.keys(v).sort() : null);
    const placed = await call<Json>(t.urls.registry, "POST", "/orders", { user_id: 1, items: [{ product_id: 2, quantity: 1 }] });
    const reads: [Service, string, string][] = [
      ["registry", "/products", "/products"],
      ["registry", "/orders", "/orders?limit=2"],
      ["registry", "/orders/{id}", `/orders/${placed.body.id}`],
      ["wallet", "/wallets", "/wallets"],
      ["wallet", "/wallets/{user_id}", "/wallets/1"],
      ["storage", "/stock", "/stock"],
      ["storage", "/stock/{product_id}", "/stock/2"],
    ];
    await call(t.urls.wallet, "POST", "/wallets/1/deposits", { amount_cents: 100 }, adminHeaders);
    for (const [service, route, path] of reads) {
      const real = await getJson(t.urls[service], path);
      const example = docs[service].paths[route].get.responses["200"].content["application/json"].example;
      expect([route, keysOf(example)]).toEqual([route, keysOf(real)]);
      expect([route, shape(example)]).toEqual([route, shape(real)]);
    }
    const example201 = docs.registry.paths["/orders"].post.responses["201"].content["application/json"].example;
    expect(shape(example201)).toEqual(shape(placed.body));
    expect(example201).toMatchObject({ status: "pending", reason: null, compensation: null });
  });
});
