/**
 * Route fuzzing from a service's own OpenAPI document (`GET /openapi.json`): fast-check builds
 * valid requests from each operation's parameters and body schema, then mutates them (types,
 * bounds, nesting, encodings, headers, methods, paths, query strings, HTTP versions). Each
 * request is written byte for byte on its own socket, one at a time, so that the server
 * process's CPU time between two requests is that request's cost.
 *
 * Every answer is checked against what the shop documents (the operation's statuses in the
 * document, the shell's global ones in docs/api.md, "Errors"): never a 5xx, a JSON error
 * body `{error:{code,message}}` on every 4xx, the security headers, the headers a status
 * promises (Retry-After, WWW-Authenticate, Allow, Location), a bounded CPU cost, and a few
 * oracles (an invalid Idempotency-Key or a body in invalid UTF-8 is never accepted; an
 * HTTP/1.0 request without Host is routed as the same request with one).
 *
 * Used by test/fuzz.test.ts (a few thousand requests per service in CI) and scripts/fuzz.ts
 * (`bun run fuzz`, tens of thousands).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import fc from "fast-check";
import { auditShop, httpSources } from "../../src/saga/audit/shop-audit";
import { eventually } from "./eventually";
import { TEST_ADMIN_TOKEN } from "./http";

/**
 * Deepest nesting the fuzzer sends. The landed duplicate-key scan is quadratic in the depth
 * (issue 24); raise this to 100_000 once the depth limit of src/http is merged: the per-request
 * CPU bound below then holds the fix to its promise.
 */
const DEEP_NESTING_MAX = 100_000;

/**
 * CPU the server may spend on any one heavy request sent alone, in ms (the kernel counts in 10 ms
 * ticks). Background work (sweeps, the relay, a garbage collection) can land in one measurement,
 * so a request over the bound is sent again and the lesser of the two counts.
 */
const MAX_REQUEST_CPU_MS = 500;

/** How much one request may raise the server's peak RSS (VmHWM), in MB. */
const MAX_REQUEST_RSS_GROWTH_MB = 50;

/** The answers every operation can give besides its own (docs/api.md, "Errors": the HTTP shell's). */
const GLOBAL_STATUSES = [400, 404, 405, 408, 413, 415];
/** Codes the shell gives on any route, by status. */
const GLOBAL_CODES: Record<number, string[]> = {
  400: ["invalid_request", "malformed_json", "duplicate_key", "too_deep", "bad_host"],
  401: ["unauthorized"],
  404: ["not_found"],
  405: ["method_not_allowed"],
  408: ["request_timeout"],
  413: ["payload_too_large"],
  415: ["unsupported_media_type"],
};
/** Headers every answer of the app carries (src/http/guards.ts, hardeningHeaders). */
const SECURITY_HEADERS: Record<string, RegExp> = {
  "x-content-type-options": /^nosniff$/,
  "x-frame-options": /^DENY$/,
  "referrer-policy": /^no-referrer$/,
  "content-security-policy": /./,
  "cross-origin-resource-policy": /^same-origin$/,
  "cross-origin-opener-policy": /^same-origin$/,
};
/** Methods Bun's parser knows; another one is closed without an answer (docs/security.md, "Hostile input"). */
const BUN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"]);
/** An Idempotency-Key as docs/api.md defines it: 1 to 255 visible ASCII characters. */
const VISIBLE_KEY = /^[\x21-\x7e]{1,255}$/;

// ---------------------------------------------------------------------------------------------
// The document

type Schema = {
  type?: string | string[];
  $ref?: string;
  enum?: unknown[];
  format?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  items?: Schema;
  properties?: Record<string, Schema>;
  required?: string[];
  anyOf?: Schema[];
  oneOf?: Schema[];
};

interface Parameter {
  name: string;
  in: "path" | "query" | "header";
  required: boolean;
  schema: Schema;
}

/** One operation of a service's document. */
export interface Operation {
  method: string;
  /** The path template (`/wallets/{user_id}`). */
  path: string;
  params: Parameter[];
  body: Schema | null;
  /** Documented statuses, and the error codes per status. */
  statuses: Map<number, Set<string>>;
  admin: boolean;
}

export type OpenApiDocument = {
  paths: Record<
    string,
    Record<
      string,
      {
        parameters?: (Parameter | { $ref: string })[];
        requestBody?: { content?: Record<string, { schema?: Schema }> };
        responses?: Record<string, { content?: Record<string, { schema?: Schema }> }>;
        security?: unknown[];
      }
    >
  >;
  components?: { schemas?: Record<string, Schema>; parameters?: Record<string, Parameter> };
};

/** The operations of an OpenAPI 3.1 document, `$ref`s resolved. */
function operations(doc: OpenApiDocument): Operation[] {
  const resolve = (s: Schema): Schema => (s.$ref ? resolve(doc.components?.schemas?.[s.$ref.split("/").pop() ?? ""] ?? {}) : s);
  const out: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!["get", "post", "put", "patch", "delete"].includes(method)) continue;
      const params = (op.parameters ?? []).map((p) =>
        "$ref" in p ? (doc.components?.parameters?.[p.$ref.split("/").pop() ?? ""] as Parameter) : p,
      );
      const statuses = new Map<number, Set<string>>();
      for (const [status, response] of Object.entries(op.responses ?? {})) {
        const schema = resolve(response.content?.["application/json"]?.schema ?? {});
        const codes = (schema.properties?.error?.properties?.code?.enum ?? []) as string[];
        statuses.set(Number(status), new Set(codes));
      }
      const body = op.requestBody?.content?.["application/json"]?.schema;
      out.push({
        method: method.toUpperCase(),
        path,
        params: params.map((p) => ({ ...p, required: p.required ?? false, schema: resolve(p.schema) })),
        body: body ? deref(body, resolve) : null,
        statuses,
        admin: (op.security ?? []).length > 0,
      });
    }
  }
  return out;
}

function deref(s: Schema, resolve: (s: Schema) => Schema): Schema {
  const r = resolve(s);
  return {
    ...r,
    ...(r.items ? { items: deref(r.items, resolve) } : {}),
    ...(r.properties ? { properties: Object.fromEntries(Object.entries(r.properties).map(([k, v]) => [k, deref(v, resolve)])) } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Values from schemas

/** A raw JSON text spliced into a body where JSON.stringify cannot write it (2^53 + 1, 1e400, -0). */
class Raw {
  constructor(readonly text: string) {}
}
type Json = null | boolean | number | string | Raw | Json[] | { [k: string]: Json };

function typeOf(s: Schema): string {
  const t = Array.isArray(s.type) ? s.type.find((x) => x !== "null") : s.type;
  if (t) return t;
  if (s.properties) return "object";
  if (s.items) return "array";
  return "string";
}

/** Valid values of a schema, biased to small ids so that requests meet real rows. */
function valid(s: Schema): fc.Arbitrary<Json> {
  if (s.enum) return fc.constantFrom(...(s.enum as Json[]));
  switch (typeOf(s)) {
    case "integer": {
      const min = s.exclusiveMinimum !== undefined ? s.exclusiveMinimum + 1 : (s.minimum ?? -(2 ** 31));
      const max = s.exclusiveMaximum !== undefined ? s.exclusiveMaximum - 1 : (s.maximum ?? 2 ** 31 - 1);
      const full = fc.bigInt({ min: BigInt(min), max: BigInt(max) }).map(Number);
      return fc.oneof({ weight: 3, arbitrary: fc.integer({ min, max: Math.min(max, min + 9) }) }, { weight: 1, arbitrary: full });
    }
    case "number":
      return fc.double({ min: s.minimum ?? -1e9, max: s.maximum ?? 1e9, noNaN: true, noDefaultInfinity: true });
    case "boolean":
      return fc.boolean();
    case "array":
      return fc.array(valid(s.items ?? {}), { minLength: s.minItems ?? 0, maxLength: Math.min(s.maxItems ?? 5, 5) });
    case "object": {
      const props = s.properties ?? {};
      const record = Object.fromEntries(Object.entries(props).map(([k, v]) => [k, valid(v)]));
      return fc.record(record, { requiredKeys: (s.required ?? []).filter((k) => k in props) }) as fc.Arbitrary<Json>;
    }
    default:
      if (s.format === "uuid") return fc.uuid();
      if (s.pattern) return fc.stringMatching(new RegExp(s.pattern));
      return fc.string({ minLength: s.minLength ?? 0, maxLength: Math.min(s.maxLength ?? 20, 20) });
  }
}

/** A value of the wrong type or out of range, as JSON: the shapes clients get wrong and attackers try. */
const wrongValue: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>(
    null,
    true,
    false,
    0,
    -1,
    1.5,
    -0.5,
    2 ** 31,
    2 ** 53,
    2 ** 63,
    1e308,
    "1",
    "",
    "NaN",
    "Infinity",
    "-0",
    "0x10",
    "1e2",
    " 1",
    "1 ",
    "١",
    [],
    {},
    [1],
    { a: 1 },
    new Raw("9007199254740993"),
    new Raw("-9007199254740993"),
    new Raw("1e400"),
    new Raw("-0"),
    new Raw("1E2"),
    new Raw("0.1e1"),
    new Raw("123456789012345678901234567890"),
    new Raw("1.0000000000000000000000001"),
  ),
  fc.integer(),
  fc.double(),
  fc.string({ maxLength: 30 }),
  fc.string({ unit: "grapheme", maxLength: 10 }),
  fc.constantFrom("\u0000", "\ud800", "\udfff", "\u202e", "\ufeff", "%00", "\\u0000", "'; drop table orders; --", "<script>"),
);

/** Nested arrays or objects `depth` deep around `inner`. */
function nested(depth: number, kind: "array" | "object", inner: string): string {
  return kind === "array" ? `${"[".repeat(depth)}${inner}${"]".repeat(depth)}` : `${'{"a":'.repeat(depth)}${inner}${"}".repeat(depth)}`;
}

/** Replaces or removes the value at a random path of `value` (depth-first pick by index). */
function edit(value: Json, pick: number, change: (old: Json) => Json | undefined): Json {
  const paths: (string | number)[][] = [];
  const walk = (v: Json, path: (string | number)[]) => {
    paths.push(path);
    if (Array.isArray(v)) for (const [i, x] of v.entries()) walk(x, [...path, i]);
    else if (v && typeof v === "object" && !(v instanceof Raw)) for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
  };
  walk(value, []);
  const path = paths[pick % paths.length] ?? [];
  if (path.length === 0) return change(value) ?? null;
  const copy = clone(value);
  let parent: Json = copy;
  for (const step of path.slice(0, -1)) parent = (parent as Record<string | number, Json>)[step] as Json;
  const last = path.at(-1) as string | number;
  const container = parent as Record<string | number, Json>;
  const next = change(container[last] as Json);
  if (next === undefined) {
    if (Array.isArray(container)) container.splice(last as number, 1);
    else delete container[last];
  } else container[last] = next;
  return copy;
}

const RAW_MARK = "@@fuzz-raw-";

/** A deep copy that keeps Raw parts (structuredClone would make them plain objects). */
function clone(v: Json): Json {
  if (Array.isArray(v)) return v.map(clone);
  if (v && typeof v === "object" && !(v instanceof Raw)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, clone(x)]));
  return v;
}

/** JSON text of a value with its Raw parts spliced in. */
function stringify(value: Json): string {
  const raws: string[] = [];
  const text = JSON.stringify(value, (_k, v) => {
    if (v instanceof Raw) {
      raws.push(v.text);
      return `${RAW_MARK}${raws.length - 1}`;
    }
    return v;
  });
  return (text ?? "null").replaceAll(new RegExp(`"${RAW_MARK}(\\d+)"`, "g"), (_m, i: string) => raws[Number(i)] ?? "null");
}

// ---------------------------------------------------------------------------------------------
// Requests

/** One request, as bytes on the wire plus what the oracles need to know about it. */
export interface FuzzRequest {
  /** The operation it was built from. */
  op: Operation;
  method: string;
  target: string;
  version: string;
  headers: [string, string][];
  body: Uint8Array | null;
  /** What was done to it, for the tallies and to name a failing request. */
  mutations: string[];
  /** The path is the operation's own (only parameter values changed), so its statuses apply. */
  pathIntact: boolean;
  /** Bun may answer by itself (empty body, no app headers) or close: framing, sizes, methods. */
  bunLevel: boolean;
  /** Send the head and this part of the body, then half-close: a body that stops short of its Content-Length. */
  truncated: boolean;
  /** The request has an Idempotency-Key docs/api.md's rule refuses (`space`: only for an inner space). */
  badKey: "space" | "other" | null;
  /** The body holds bytes that are not UTF-8. */
  invalidUtf8: boolean;
  /** The nesting depth of the body, when it was made deep. */
  depth: number;
}

interface Draft {
  method: string;
  path: string;
  query: [string, string][];
  rawQuery: string | null;
  headers: [string, string][];
  body: Json | undefined;
  bodyText: string | null;
  bodyBytes: Uint8Array | null;
  contentType: string | null;
  version: string;
  host: string | null;
  mutations: string[];
  pathIntact: boolean;
  bunLevel: boolean;
  truncated: boolean;
  chunked: boolean;
  badKey: FuzzRequest["badKey"];
  invalidUtf8: boolean;
  depth: number;
}

const enc = new TextEncoder();

/** A valid request for `op`: parameters and body from their schemas, the admin token where needed. */
function validDraft(op: Operation, hostHeader: string): fc.Arbitrary<Draft> {
  const pathParams = op.params.filter((p) => p.in === "path");
  const queryParams = op.params.filter((p) => p.in === "query");
  const headerParams = op.params.filter((p) => p.in === "header");
  return fc
    .record({
      path: fc.tuple(...pathParams.map((p) => valid(p.schema))),
      query: fc.tuple(...queryParams.map((p) => fc.option(valid(p.schema), { nil: undefined }))),
      headers: fc.tuple(
        ...headerParams.map((p) => fc.option(fc.oneof(valid(p.schema), fc.constantFrom("fuzz-key-1", "fuzz-key-2")), { nil: undefined })),
      ),
      body: op.body ? valid(op.body) : fc.constant(undefined),
    })
    .map(({ path, query, headers, body }) => {
      let p = op.path;
      pathParams.forEach((param, i) => {
        p = p.replace(`{${param.name}}`, encodeURIComponent(String(path[i])));
      });
      const q: [string, string][] = [];
      queryParams.forEach((param, i) => {
        if (query[i] !== undefined) q.push([param.name, String(query[i])]);
      });
      const h: [string, string][] = [];
      headerParams.forEach((param, i) => {
        if (headers[i] !== undefined) h.push([param.name, String(headers[i])]);
      });
      if (op.admin) h.push(["Authorization", `Bearer ${TEST_ADMIN_TOKEN}`]);
      return {
        method: op.method,
        path: p,
        query: q,
        rawQuery: null,
        headers: h,
        body,
        bodyText: null,
        bodyBytes: null,
        contentType: body === undefined ? null : "application/json",
        version: "HTTP/1.1",
        host: hostHeader,
        mutations: [],
        pathIntact: true,
        bunLevel: false,
        truncated: false,
        chunked: false,
        badKey: null,
        invalidUtf8: false,
        depth: 0,
      } satisfies Draft;
    });
}

type Mutation = (d: Draft) => fc.Arbitrary<Draft>;
const tagged = (d: Draft, tag: string, patch: Partial<Draft>): Draft => ({ ...d, ...patch, mutations: [...d.mutations, tag] });

/** Mutations of the body's values (the body must be JSON). */
const bodyValueMutations: Mutation[] = [
  (d) => fc.tuple(fc.nat(), wrongValue).map(([i, w]) => tagged(d, "body:wrong-value", { body: edit(d.body ?? null, i, () => w) })),
  (d) => fc.nat().map((i) => tagged(d, "body:missing-field", { body: edit(d.body ?? null, i + 1, () => undefined) })),
  (d) =>
    fc.tuple(fc.string({ maxLength: 12 }), wrongValue).map(([k, v]) =>
      tagged(d, "body:extra-field", {
        body: d.body && typeof d.body === "object" && !Array.isArray(d.body) ? { ...(d.body as object), [k || "x"]: v } : { extra: v },
      }),
    ),
  (d) =>
    fc
      .tuple(fc.nat(), fc.integer({ min: 1, max: DEEP_NESTING_MAX }), fc.constantFrom<"array" | "object">("array", "object"))
      .map(([i, depth, kind]) =>
        tagged(d, "body:deep-value", { body: edit(d.body ?? null, i, () => new Raw(nested(depth, kind, "1"))), depth }),
      ),
  (d) =>
    fc
      .tuple(fc.nat(), fc.constantFrom(1_000, 100_000, 900_000), fc.constantFrom("a", "é", "\\u0000", "\ud83d\ude00"))
      .map(([i, n, ch]) =>
        tagged(d, "body:long-string", { body: edit(d.body ?? null, i, () => new Raw(`"${ch.repeat(Math.ceil(n / ch.length))}"`)) }),
      ),
  (d) =>
    fc.nat({ max: 200 }).map((n) =>
      tagged(d, "body:long-array", {
        body: edit(d.body ?? null, 1, () => Array.from({ length: n * 5 }, (_, i) => ({ product_id: i + 1, quantity: 1 }))),
      }),
    ),
];

/** Mutations of the body's text and bytes. */
const bodyTextMutations: Mutation[] = [
  (d) =>
    fc
      .constantFrom(
        "",
        " ",
        "null",
        "[]",
        "1",
        '"x"',
        "{",
        "}",
        "{}",
        "[{}]",
        '{"a":1,}',
        "{'a':1}",
        '{"a":1}garbage',
        '{"a":1}{"b":2}',
        "/*c*/{}",
        "\u0000",
        "tru",
        '{"user_id":1,"user_id":2}',
      )
      .map((t) => tagged(d, "text:odd", { bodyText: t })),
  (d) =>
    fc.nat().map((cut) => {
      const t = stringify(d.body ?? {});
      return tagged(d, "text:truncated-json", { bodyText: t.slice(0, cut % Math.max(1, t.length)) });
    }),
  (d) => fc.constant(tagged(d, "text:bom", { bodyText: `\ufeff${stringify(d.body ?? {})}` })),
  (d) =>
    fc
      .constantFrom("\n", "\t", "\r\n", "  ")
      .map((ws) => tagged(d, "text:whitespace", { bodyText: `${ws}${stringify(d.body ?? {})}${ws}` })),
  (d) =>
    fc
      .tuple(fc.integer({ min: 1, max: DEEP_NESTING_MAX }), fc.constantFrom<"array" | "object">("array", "object"), fc.boolean())
      .map(([depth, kind, closed]) => {
        const t = nested(depth, kind, "1");
        return tagged(d, "text:deep", { bodyText: closed ? t : t.slice(0, t.length - depth), depth });
      }),
  (d) =>
    fc.tuple(fc.integer({ min: 2, max: 50 })).map(([n]) => {
      const key = d.body && typeof d.body === "object" && !Array.isArray(d.body) ? (Object.keys(d.body)[0] ?? "a") : "a";
      const t = stringify(d.body ?? {});
      const dup = `${t.slice(0, -1)}${t.length > 2 ? "," : ""}${Array.from({ length: n }, (_, i) => `"${key}":${i}`).join(",")}}`;
      return tagged(d, "text:duplicate-key", { bodyText: dup.startsWith("{") ? dup : `{${dup}` });
    }),
  (d) =>
    fc
      .tuple(
        fc.constantFrom([0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf8, 0x88, 0x80, 0x80, 0x80], [0x80]),
        fc.constantFrom("key", "value"),
      )
      .map(([bad, where]) => {
        const t = stringify(d.body ?? {});
        const open = t.startsWith("{") ? 1 : 0;
        const [head, tail] =
          where === "key" && open
            ? ['{"', `":1,${t.slice(1)}`]
            : [`${t.slice(0, open)}"x":"`, `"${t.length > 2 ? "," : ""}${t.slice(open)}`];
        const bytes = new Uint8Array([...enc.encode(head), ...bad, ...enc.encode(tail)]);
        return tagged(d, `bytes:invalid-utf8-${where}`, { bodyBytes: bytes, invalidUtf8: true });
      }),
  (d) => fc.constant(tagged(d, "bytes:utf16", { bodyBytes: new Uint8Array(Buffer.from(`\ufeff${stringify(d.body ?? {})}`, "utf16le")) })),
  (d) =>
    fc.constantFrom(1_048_576, 1_048_577, 2_000_000).map((n) => {
      const t = stringify(d.body ?? {});
      return tagged(d, "bytes:over-limit", { bodyText: `${t.slice(0, -1)}${t.length > 2 ? "," : ""}"pad":"${"x".repeat(n)}"}` });
    }),
];

/** Mutations of the headers. */
const headerMutations: Mutation[] = [
  (d) =>
    fc
      .constantFrom<string | null>(
        null,
        "text/plain",
        "application/json; charset=utf-16",
        'application/json; charset="UTF-8"',
        "APPLICATION/JSON",
        "application/problem+json",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "application/json, text/plain",
        "application/json;;",
        "json",
        "",
        "application/json; charset=latin1",
        "text/json",
      )
      .map((ct) => tagged(d, "header:content-type", { contentType: ct })),
  (d) =>
    fc
      .constantFrom("gzip", "deflate", "br", "identity", "x-unknown")
      .map((ce) => tagged(d, "header:content-encoding", { headers: [...d.headers, ["Content-Encoding", ce]] })),
  (d) =>
    fc
      .constantFrom<[string | null, boolean]>(
        [null, true],
        ["", true],
        ["a b", false],
        ["x/y", false],
        ["user@host", false],
        ["127.0.0.1:99999", false],
        ["[::1]", false],
        ["[::1]:8000", false],
        ["localhost", false],
        ["LOCALHOST.", false],
        ["evil.example", false],
        ["a".repeat(300), false],
        ["127.0.0.1:0", false],
        ["%00", false],
        ["host\tname", false],
      )
      .map(([host, bun]) => tagged(d, "header:host", { host, bunLevel: d.bunLevel || bun })),
  (d) => fc.constant(tagged(d, "header:two-hosts", { headers: [...d.headers, ["Host", "evil.example"]], bunLevel: true })),
  (d) =>
    fc
      .constantFrom<[string, FuzzRequest["badKey"]]>(
        ["a b", "space"],
        ["key with spaces", "space"],
        ["x".repeat(256), "other"],
        ["x".repeat(255), null],
        ["\u00e9t\u00e9", "other"],
        ["a\tb", "other"],
        ["fuzz-key-1", null],
        ["!", null],
        ["~".repeat(40), null],
      )
      .map(([key, bad]) =>
        tagged(d, "header:idempotency-key", {
          headers: [...d.headers.filter(([n]) => n !== "Idempotency-Key"), ["Idempotency-Key", key]],
          badKey: bad,
        }),
      ),
  (d) =>
    fc.constant(
      tagged(d, "header:two-idempotency-keys", {
        headers: [...d.headers, ["Idempotency-Key", "fuzz-key-a"], ["Idempotency-Key", "fuzz-key-b"]],
      }),
    ),
  (d) =>
    fc
      .constantFrom(
        `Bearer ${TEST_ADMIN_TOKEN}`,
        `Bearer ${TEST_ADMIN_TOKEN}x`,
        `Bearer ${TEST_ADMIN_TOKEN.slice(0, -1)}X`,
        "Bearer",
        "Bearer ",
        `bearer ${TEST_ADMIN_TOKEN}`,
        `Basic ${btoa(`admin:${TEST_ADMIN_TOKEN}`)}`,
        `Bearer  ${TEST_ADMIN_TOKEN}`,
        TEST_ADMIN_TOKEN,
        "Bearer x".repeat(500),
      )
      .map((auth) =>
        tagged(d, "header:authorization", { headers: [...d.headers.filter(([n]) => n !== "Authorization"), ["Authorization", auth]] }),
      ),
  (d) =>
    fc.constant(tagged(d, "header:two-authorizations", { headers: [...d.headers, ["Authorization", "Bearer wrong-token-0123456789"]] })),
  (d) =>
    fc
      .constantFrom(4_000, 12_000, 20_000)
      .map((n) => tagged(d, "header:huge", { headers: [...d.headers, ["X-Fuzz", "v".repeat(n)]], bunLevel: d.bunLevel || n > 15_000 })),
  (d) =>
    fc.integer({ min: 50, max: 300 }).map((n) =>
      tagged(d, "header:many", {
        headers: [...d.headers, ...Array.from({ length: n }, (_, i): [string, string] => [`X-Fuzz-${i}`, String(i)])],
        bunLevel: true,
      }),
    ),
  (d) =>
    fc
      .constantFrom<[string, string]>(
        ["Traceparent", "00-zzzz-zz-01"],
        ["Traceparent", `00-${"0".repeat(32)}-${"0".repeat(16)}-01`],
        ["X-Request-Id", "x".repeat(2000)],
        ["X-Request-Id", "\u00ff"],
        ["Accept", "text/html"],
        ["Accept-Encoding", "gzip, br"],
        ["Expect", "100-continue"],
        ["Connection", "keep-alive, Upgrade"],
        ["Upgrade", "websocket"],
        ["X-Forwarded-For", "1.2.3.4"],
        ["Range", "bytes=0-1"],
        ["If-None-Match", "*"],
      )
      .map((h) => tagged(d, "header:odd", { headers: [...d.headers, h] })),
  (d) => fc.constant(tagged(d, "header:transfer-encoding", { chunked: true })),
  (d) =>
    fc
      .constantFrom(
        "Content-Length: abc",
        "Content-Length: -1",
        "Content-Length: 1, 2",
        "Transfer-Encoding: chunked, gzip",
        "Content-Length: 5000000000",
      )
      .map((h) => {
        const [name = "", value = ""] = h.split(": ");
        return tagged(d, "header:bad-framing", { headers: [...d.headers, [name, value]], bunLevel: true });
      }),
  (d) => fc.constant(tagged(d, "body:truncated", { truncated: true })),
];

/** Mutations of the method, path, query and version. */
const lineMutations: Mutation[] = [
  (d) =>
    fc
      .constantFrom("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE")
      .map((m) => tagged(d, `method:${m}`, { method: m })),
  (d) => fc.constantFrom("get", "FROBNICATE", "G", "PROPFIND").map((m) => tagged(d, "method:weird", { method: m, bunLevel: true })),
  (d) =>
    fc
      .constantFrom<(p: string) => string>(
        (p) => `${p}/`,
        (p) => `${p}//`,
        (p) => `/${p}`,
        (p) => p.replace("/", "//"),
        (p) => `/.${p}`,
        (p) => `/x/..${p}`,
        (p) => `/%2e%2e${p}`,
        (p) => `${p}/..`,
        (p) => `${p}/.`,
        (p) => p.replaceAll("/", "%2F"),
        (p) => p.replace(/[a-z]/, (c) => `%${c.charCodeAt(0).toString(16)}`),
        (p) => p.toUpperCase(),
        (p) => `${p}%00`,
        (p) => `${p};x=1`,
        (p) => `/evil${p}`,
        (p) => `${p}/${"a".repeat(8_000)}`,
        (p) => `${p}${"/.".repeat(2_000)}`,
        (p) => p.replace(/\/[^/]*$/, "/\u00e9"),
        (p) => `http://evil.example${p}`,
        () => "*",
        (p) => `${p}#frag`,
      )
      .map((f) => {
        const path = f(d.path);
        // A request-target that is not origin-form is malformed HTTP to Bun (an empty 400).
        return tagged(d, "path:odd", { path, pathIntact: false, bunLevel: d.bunLevel || !path.startsWith("/") });
      }),
  (d) =>
    fc
      .tuple(
        fc.nat(),
        fc.constantFrom(
          "0",
          "-1",
          "1e2",
          "01",
          "1.0",
          " 1",
          "%201",
          "9007199254740993",
          "99999999999999999999",
          "x",
          "%",
          "%zz",
          "%F0%9F%98%80",
          "",
          "null",
          "1%00",
          "0x1",
          "3f6c1a52-8d4e-4b8e-9a57-2c1d0e9b7a4",
          "../1",
        ),
      )
      .map(([i, v]) => {
        const segments = d.path.split("/");
        const digits = segments.map((s, j) => (/^[0-9a-f-]+$/.test(s) ? j : -1)).filter((j) => j >= 0);
        if (digits.length === 0) return tagged(d, "path:param", {});
        segments[digits[i % digits.length] ?? 0] = v;
        // A space ends the request-target: the line is malformed HTTP (Bun answers it alone).
        return tagged(d, "path:param", { path: segments.join("/"), bunLevel: d.bunLevel || v.includes(" ") });
      }),
  (d) =>
    fc
      .tuple(
        fc.constantFrom("limit", "user_id", "cursor", "status", "state", "timeout", "x", "", "limit[]"),
        fc.oneof(
          wrongValue.map((v) => stringify(v)),
          fc.constantFrom("", "1", "1&limit=2", "%", "%zz", "0", "101", "1e3", "-1", "0.05", "60.1", "NaN"),
        ),
      )
      .map(([k, v]) => tagged(d, "query:value", { query: [...d.query, [k, v]] })),
  (d) =>
    fc
      .constantFrom(
        "?",
        "?&&&",
        "?a",
        "?=1",
        "?limit=1&limit=2",
        "?user_id=1&user_id=x",
        `?q=${"x".repeat(8_000)}`,
        "?%",
        "?a=%zz",
        "?a=%00",
        "?limit=5#x",
      )
      .map((q) => tagged(d, "query:raw", { rawQuery: q })),
  (d) =>
    fc
      .constantFrom("HTTP/1.0", "HTTP/1.0-nohost")
      .map((v) => tagged(d, `version:${v}`, v === "HTTP/1.0" ? { version: v } : { version: "HTTP/1.0", host: null })),
  (d) =>
    fc
      .constantFrom("HTTP/2.0", "HTTP/0.9", "http/1.1", "HTTP/1.1 x")
      .map((v) => tagged(d, "version:weird", { version: v, bunLevel: true })),
];

const MUTATIONS: Mutation[] = [...headerMutations, ...lineMutations];

/** Requests for `op`: a fifth valid, the rest with one to three mutations. */
function requests(op: Operation, hostHeader: string): fc.Arbitrary<FuzzRequest> {
  return validDraft(op, hostHeader)
    .chain((draft) =>
      fc.integer({ min: 0, max: 9 }).chain((roll) => {
        if (roll < 2) return fc.constant(draft);
        const count = roll < 7 ? 1 : roll < 9 ? 2 : 3;
        const pool =
          draft.body !== undefined || roll === 9
            ? [...bodyValueMutations, ...bodyTextMutations, ...bodyTextMutations, ...MUTATIONS]
            : MUTATIONS;
        let arb = fc.constant(draft);
        for (let i = 0; i < count; i++) arb = arb.chain((d) => fc.constantFrom(...pool).chain((m) => m(d)));
        return arb;
      }),
    )
    .map((d) => build(d, op));
}

/** The bytes of a draft. */
function build(d: Draft, op: Operation): FuzzRequest {
  let body: Uint8Array | null = null;
  if (d.bodyBytes) body = d.bodyBytes;
  else if (d.bodyText !== null) body = enc.encode(d.bodyText);
  else if (d.body !== undefined) body = enc.encode(stringify(d.body));
  const query =
    d.rawQuery ?? (d.query.length > 0 ? `?${d.query.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&")}` : "");
  const headers: [string, string][] = [];
  if (d.host !== null) headers.push(["Host", d.host]);
  headers.push(...d.headers);
  if (body !== null && d.contentType !== null && !d.mutations.includes("header:content-type"))
    headers.push(["Content-Type", d.contentType]);
  else if (d.mutations.includes("header:content-type") && d.contentType !== null) headers.push(["Content-Type", d.contentType]);
  if (body !== null && d.chunked) headers.push(["Transfer-Encoding", "chunked"]);
  else if (body !== null && !headers.some(([n]) => n === "Content-Length")) headers.push(["Content-Length", String(body.byteLength)]);
  headers.push(["Connection", "close"]);
  // Past 16 KiB of request line and headers Bun answers 431 by itself.
  const headBytes = headers.reduce((n, [k, v]) => n + k.length + v.length + 4, d.path.length + query.length);
  return {
    op,
    method: d.method,
    target: `${d.path}${query}`,
    version: d.version,
    headers,
    body: d.chunked && body !== null ? chunk(body) : body,
    mutations: d.mutations,
    pathIntact: d.pathIntact,
    // Transfer-Encoding in an HTTP/1.0 request is faulty framing (RFC 9112, 6.1): Bun refuses it.
    bunLevel: d.bunLevel || headBytes > 15_000 || (body !== null && d.chunked && d.version === "HTTP/1.0"),
    truncated: d.truncated && body !== null && body.byteLength > 0,
    badKey: d.badKey,
    invalidUtf8: d.invalidUtf8,
    depth: d.depth,
  };
}

/** A body in chunked transfer coding, a few KiB per chunk. */
function chunk(body: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < body.byteLength; i += 4096) {
    const piece = body.subarray(i, i + 4096);
    parts.push(enc.encode(`${piece.byteLength.toString(16)}\r\n`), piece, enc.encode("\r\n"));
  }
  parts.push(enc.encode("0\r\n\r\n"));
  return Buffer.concat(parts);
}

/** The request's head and body as written on the socket. */
function wire(r: FuzzRequest): Uint8Array {
  const head = `${r.method} ${r.target} ${r.version}\r\n${r.headers.map(([n, v]) => `${n}: ${v}`).join("\r\n")}\r\n\r\n`;
  const headBytes = Buffer.from(head, "latin1");
  if (r.body === null) return headBytes;
  const body = r.truncated ? r.body.subarray(0, Math.floor(r.body.byteLength / 2)) : r.body;
  return Buffer.concat([headBytes, body]);
}

/** A short readable form of a request, to name it in a report. */
function describe(r: FuzzRequest): string {
  const body =
    r.body === null ? "" : ` body ${r.body.byteLength} B: ${JSON.stringify(Buffer.from(r.body.subarray(0, 120)).toString("latin1"))}`;
  const headers = r.headers.map(([n, v]) => `${n}: ${v.length > 60 ? `${v.slice(0, 60)}...(${v.length})` : v}`).join(" | ");
  const target = r.target.length > 120 ? `${r.target.slice(0, 120)}...(${r.target.length})` : r.target;
  return `${r.method} ${target} ${r.version} [${r.mutations.join(", ") || "valid"}] {${headers}}${body}`;
}

// ---------------------------------------------------------------------------------------------
// The wire

/** An answer as read from the socket; `status` 0 when the connection closed without one. */
export interface Answer {
  status: number;
  headers: Map<string, string[]>;
  body: Buffer;
}

/** Writes `r` on a new connection and reads the answer (the head only for an event stream). */
function exchange(baseUrl: string, r: FuzzRequest, timeoutMs = 40_000): Promise<Answer> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(parse(Buffer.concat(chunks), r.method === "HEAD"));
    };
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      socket.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on("data", (d: Buffer) => {
      chunks.push(d);
      const all = finalAnswer(Buffer.concat(chunks));
      const end = all.indexOf("\r\n\r\n");
      if (end < 0 || /^HTTP\/1\.[01] 1\d\d /.test(all.subarray(0, 13).toString("latin1"))) return;
      // An event stream never ends: its head is the answer.
      if (/content-type:\s*text\/event-stream/i.test(all.subarray(0, end).toString("latin1")) || complete(all, end, r.method === "HEAD"))
        finish();
    });
    socket.on("end", finish);
    socket.on("close", finish);
    socket.on("error", () => finish());
    socket.write(wire(r), () => {
      if (r.truncated) socket.end();
    });
  });
}

/** The bytes from the final answer on: interim ones (100 Continue) skipped. */
function finalAnswer(all: Buffer): Buffer {
  let bytes = all;
  while (/^HTTP\/1\.[01] 1\d\d /.test(bytes.subarray(0, 13).toString("latin1")) && bytes.indexOf("\r\n\r\n") >= 0)
    bytes = bytes.subarray(bytes.indexOf("\r\n\r\n") + 4);
  return bytes;
}

/** Whether `all` (from the final answer on) holds a whole answer: Content-Length read, or the last chunk. */
function complete(all: Buffer, end: number, head: boolean): boolean {
  const headText = all.subarray(0, end).toString("latin1");
  if (head || /^HTTP\/1\.[01] (204|304)/.test(headText)) return true;
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(headText);
  if (length) return all.byteLength - end - 4 >= Number(length[1]);
  if (/\r\ntransfer-encoding:\s*chunked/i.test(headText))
    return all.subarray(end + 4).indexOf("0\r\n\r\n") === 0 || all.subarray(end + 4).includes("\r\n0\r\n\r\n");
  return false;
}

function parse(all: Buffer, head: boolean): Answer {
  const bytes = finalAnswer(all);
  const end = bytes.indexOf("\r\n\r\n");
  if (end < 0) return { status: 0, headers: new Map(), body: Buffer.alloc(0) };
  const [statusLine = "", ...lines] = bytes.subarray(0, end).toString("latin1").split("\r\n");
  const headers = new Map<string, string[]>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).trim().toLowerCase();
    headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
  }
  let body = head ? Buffer.alloc(0) : bytes.subarray(end + 4);
  const length = headers.get("content-length")?.[0];
  if (length !== undefined) body = body.subarray(0, Number(length));
  else if (headers.get("transfer-encoding")?.[0]?.includes("chunked")) body = unchunk(body);
  return { status: Number(statusLine.split(" ")[1] ?? 0), headers, body };
}

function unchunk(b: Buffer): Buffer {
  const out: Buffer[] = [];
  let i = 0;
  for (;;) {
    const nl = b.indexOf("\r\n", i);
    if (nl < 0) break;
    const size = Number.parseInt(b.subarray(i, nl).toString("latin1"), 16);
    if (!(size > 0)) break;
    out.push(b.subarray(nl + 2, nl + 2 + size));
    i = nl + 2 + size + 2;
  }
  return Buffer.concat(out);
}

// ---------------------------------------------------------------------------------------------
// The oracles

/** Known findings of issue 24 that src/http is being fixed for; any other kind is a new bug. */
export type Finding =
  | "5xx"
  | "undocumented-status"
  | "no-answer"
  | "not-json-error"
  | "undocumented-code"
  | "security-headers"
  | "security-headers-bad-host"
  | "status-header"
  | "retry-after-503"
  | "idempotency-key-space"
  | "idempotency-key-accepted"
  | "invalid-utf8"
  | "content-encoding-ignored"
  | "http10-no-host-routing"
  | "cpu"
  | "cpu-deep-nesting"
  | "http10-no-host-500"
  | "metrics-5xx"
  | "rss-total"
  | "audit"
  | "lost-order"
  | "ordinary-order"
  | "rss"
  | "rss-deep-nesting"
  | "slow-body-500";

/** One broken rule. */
export interface Violation {
  finding: Finding;
  detail: string;
  request: string;
}

/** What a check needs beside the request and its answer. */
interface Context {
  /** Every operation of the service, for a request whose path was changed. */
  ops: Operation[];
}

/** The statuses and codes `r` may get. */
function allowed(r: FuzzRequest, ctx: Context): Map<number, Set<string>> {
  const out = new Map<number, Set<string>>();
  const add = (status: number, codes: Iterable<string>) => out.set(status, new Set([...(out.get(status) ?? []), ...codes]));
  const own = r.pathIntact && r.method === r.op.method ? [r.op] : ctx.ops;
  for (const op of own) for (const [status, codes] of op.statuses) add(status, codes);
  for (const status of GLOBAL_STATUSES) add(status, GLOBAL_CODES[status] ?? []);
  if (own.some((op) => op.admin) || r.target.includes("admin")) add(401, GLOBAL_CODES[401] ?? []);
  return out;
}

const isSuccess = (s: number) => s >= 200 && s < 300;

/** The rules one answer must keep. */
export function check(r: FuzzRequest, a: Answer, ctx: Context): Violation[] {
  const out: Violation[] = [];
  const v = (finding: Finding, detail: string) => out.push({ finding, detail, request: describe(r) });
  const header = (name: string) => a.headers.get(name)?.[0];
  if (a.status === 0) {
    // Bun closes on a method it does not know, and on a body cut short (nothing to answer).
    if (!(r.bunLevel && !BUN_METHODS.has(r.method)) && !r.truncated) v("no-answer", "the connection closed without an answer");
    return out;
  }
  // Bun's own answers (framing, sizes) have an empty body and none of the app's headers.
  const bunAnswer = a.body.byteLength === 0 && !a.headers.has("x-content-type-options") && [400, 413, 431, 505].includes(a.status);
  const documented = allowed(r, ctx);
  // Bun answers 505 to a request line with a version it does not speak; a 503 the operation documents (overloaded, not ready) is an answer, checked below.
  const bun505 = bunAnswer && a.status === 505 && r.bunLevel;
  if (a.status >= 500 && !bun505 && !(a.status === 503 && documented.has(503))) {
    v(r.truncated ? "slow-body-500" : "5xx", `status ${a.status}: ${a.body.toString("utf8").slice(0, 200)}`);
    return out;
  }
  if (bunAnswer) {
    if (!r.bunLevel) v("undocumented-status", `an empty ${a.status} from Bun for a request that is not malformed HTTP`);
    return out;
  }
  const isHead = r.method === "HEAD";
  if (!documented.has(a.status) && !(a.status === 429 && r.target.startsWith("/live/events"))) {
    v(
      "undocumented-status",
      `status ${a.status} is not documented for ${r.op.method} ${r.op.path}: ${a.body.toString("utf8").slice(0, 200)}`,
    );
  }
  let code: string | undefined;
  if (a.status >= 400 && !isHead) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(a.body.toString("utf8"));
    } catch {}
    const error = (parsed as { error?: { code?: unknown; message?: unknown; field?: unknown } } | undefined)?.error;
    const okShape =
      !!error &&
      typeof error.code === "string" &&
      /^[a-z_]+$/.test(error.code) &&
      typeof error.message === "string" &&
      (error.field === undefined || typeof error.field === "string") &&
      Object.keys(parsed as object).length === 1 &&
      /^application\/json/.test(header("content-type") ?? "");
    if (!okShape) v("not-json-error", `status ${a.status}, ${header("content-type")}: ${a.body.toString("utf8").slice(0, 200)}`);
    else {
      code = error.code as string;
      const codes = documented.get(a.status);
      if (codes && codes.size > 0 && !codes.has(code))
        v("undocumented-code", `${a.status} ${code} is not among the documented codes ${[...codes].join(", ")}`);
      if (r.invalidUtf8 && `${error.message}${error.field ?? ""}`.includes("\ufffd"))
        v("invalid-utf8", `the body was decoded to U+FFFD: ${error.message}`);
    }
  }
  const missing = Object.entries(SECURITY_HEADERS).filter(([name, re]) => !re.test(header(name) ?? ""));
  if (missing.length > 0) {
    const badHost = a.status === 400 && a.body.toString("utf8").includes('"bad_host"');
    v(badHost ? "security-headers-bad-host" : "security-headers", `status ${a.status} lacks ${missing.map(([n]) => n).join(", ")}`);
  }
  if (a.status === 503 && !a.headers.has("retry-after")) v("retry-after-503", "503 without Retry-After");
  if (a.status === 401 && !a.headers.has("www-authenticate")) v("status-header", "401 without WWW-Authenticate");
  if (a.status === 405 && !a.headers.has("allow")) v("status-header", "405 without Allow");
  if (a.status === 201 && !a.headers.has("location")) v("status-header", "201 without Location");
  if (isSuccess(a.status) && r.badKey !== null && r.method === "POST") {
    v(
      r.badKey === "space" ? "idempotency-key-space" : "idempotency-key-accepted",
      `an Idempotency-Key the rule refuses was accepted (${a.status})`,
    );
  }
  const coding = r.headers.find(([n]) => n === "Content-Encoding")?.[1];
  if (
    isSuccess(a.status) &&
    coding !== undefined &&
    coding !== "identity" &&
    r.body !== null &&
    r.op.body !== null &&
    r.method === r.op.method
  ) {
    v("content-encoding-ignored", `a body sent with Content-Encoding: ${coding} was read as plain JSON (${a.status})`);
  }
  if (isSuccess(a.status) && r.invalidUtf8 && r.op.body !== null && r.method === r.op.method)
    v("invalid-utf8", `a body in invalid UTF-8 was accepted (${a.status})`);
  const key = r.headers.find(([n]) => n === "Idempotency-Key")?.[1];
  if (isSuccess(a.status) && r.method === "POST" && key !== undefined && !VISIBLE_KEY.test(key) && r.badKey === null) {
    v(
      VISIBLE_KEY.test(key.replaceAll(" ", "x")) ? "idempotency-key-space" : "idempotency-key-accepted",
      `Idempotency-Key ${JSON.stringify(key.slice(0, 40))} was accepted`,
    );
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Process figures

/** CPU time (user + system) of a process in ms, from /proc/<pid>/stat (10 ms ticks). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // After the command: state is field 3, utime 14 and stime 15 (1-based over the whole line).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Resets a process's VmHWM to its current RSS (`clear_refs` 5), so that the peak is the run's own. */
function resetPeak(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, "5");
}

/** VmRSS and VmHWM (peak) of a process in MB. */
function memoryMb(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN);
  return { rss: kb("VmRSS") / 1024, peak: kb("VmHWM") / 1024 };
}

// ---------------------------------------------------------------------------------------------
// A run

/** What one service's run found. */
export interface ServiceRun {
  service: string;
  tried: number;
  /** Answers by status (0: the connection closed without one). */
  statuses: Map<number, number>;
  violations: Violation[];
  /** Server CPU over the run. */
  cpuMs: number;
  /** The most CPU and peak-RSS growth one request measured alone cost, and which. */
  maxRequestCpuMs: number;
  maxRequest: string;
  maxPeakGrowthMb: number;
  maxPeakRequest: string;
  /** Requests measured alone (the heavy shapes; every request with one lane). */
  measured: number;
  /** Requests whose body was cut short (Bun then closes the connection; the shop may count a 5xx). */
  truncated: number;
  /** 5xx answers seen that are known findings (counted in the metrics too). */
  known5xx: number;
  /** 201 order ids (each must still exist afterwards). */
  orders: string[];
  /** The shop's RSS and its peak since the start of the whole run when this service's requests ended, MB. */
  memory: { rss: number; peak: number };
}

/** Options of a run against one service. */
export interface RunOptions {
  service: string;
  baseUrl: string;
  doc: OpenApiDocument;
  seed: number;
  count: number;
  /** The server process, for its CPU time and RSS. */
  pid: number;
  /** Requests in flight at once (default 4); heavy ones are always sent alone, to measure them. */
  lanes?: number;
  /** Called every 1000 requests. */
  progress?: (done: number) => void;
  /** Only the request with this index (replaying one finding). */
  only?: number;
}

/** The seed of request `i` of `service` in a run seeded `seed`: any one request can be replayed alone. */
const requestSeed = (seed: number, service: string, i: number): number => {
  let h = seed >>> 0;
  for (const ch of `${service}:${i}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return h;
};

/** Whether a request is one of the shapes whose cost is bounded one by one (sent alone, measured). */
function heavy(r: FuzzRequest): boolean {
  const headerBytes = r.headers.reduce((n, [k, v]) => n + k.length + v.length, 0);
  return r.depth > 0 || (r.body?.byteLength ?? 0) > 50_000 || headerBytes > 3_000 || r.target.length > 2_000 || r.truncated;
}

/** An authorised audit reads the whole database: its cost grows with the data, by design. */
const unbounded = (r: FuzzRequest, a: Answer) => a.status === 200 && r.target.startsWith("/admin/audit");

/** Sends `count` requests to one service and checks each answer; heavy shapes are sent alone and their cost measured. */
export async function fuzzService(o: RunOptions): Promise<ServiceRun> {
  const ops = operations(o.doc);
  const { host } = new URL(o.baseUrl);
  const all = fc.oneof(...ops.map((op) => requests(op, host)));
  const lanes = o.lanes ?? 4;
  const run: ServiceRun = {
    service: o.service,
    tried: 0,
    statuses: new Map(),
    violations: [],
    cpuMs: 0,
    maxRequestCpuMs: 0,
    maxRequest: "",
    maxPeakGrowthMb: 0,
    maxPeakRequest: "",
    measured: 0,
    truncated: 0,
    known5xx: 0,
    orders: [],
    memory: { rss: 0, peak: 0 },
  };
  const add = (i: number, finding: Finding, detail: string, r: FuzzRequest) =>
    run.violations.push({ finding, detail, request: `#${i} ${describe(r)}` });

  const one = async (i: number, r: FuzzRequest, alone: boolean) => {
    const before = alone ? { cpu: cpuMs(o.pid), peak: memoryMb(o.pid).peak } : null;
    let answer: Answer;
    let timedOut = false;
    try {
      answer = await exchange(o.baseUrl, r);
    } catch (err) {
      add(i, "no-answer", String(err), r);
      answer = { status: 0, headers: new Map(), body: Buffer.alloc(0) };
      timedOut = true;
    }
    run.tried += 1;
    if (r.truncated) run.truncated += 1;
    run.statuses.set(answer.status, (run.statuses.get(answer.status) ?? 0) + 1);
    if (before) {
      let spent = cpuMs(o.pid) - before.cpu;
      if (spent > MAX_REQUEST_CPU_MS && !unbounded(r, answer)) {
        const again = cpuMs(o.pid);
        await exchange(o.baseUrl, r).catch(() => null);
        spent = Math.min(spent, cpuMs(o.pid) - again);
      }
      const grown = memoryMb(o.pid).peak - before.peak;
      run.measured += 1;
      if (spent > run.maxRequestCpuMs && !unbounded(r, answer)) [run.maxRequestCpuMs, run.maxRequest] = [spent, `#${i} ${describe(r)}`];
      if (grown > run.maxPeakGrowthMb) [run.maxPeakGrowthMb, run.maxPeakRequest] = [grown, `#${i} ${describe(r)}`];
      if (spent > MAX_REQUEST_CPU_MS && !unbounded(r, answer))
        add(i, r.depth > 0 ? "cpu-deep-nesting" : "cpu", `${spent} ms of server CPU (bound ${MAX_REQUEST_CPU_MS})`, r);
      if (grown > MAX_REQUEST_RSS_GROWTH_MB)
        add(
          i,
          r.depth > 0 ? "rss-deep-nesting" : "rss",
          `the peak RSS grew by ${grown.toFixed(0)} MB (bound ${MAX_REQUEST_RSS_GROWTH_MB})`,
          r,
        );
    }
    const noHost = r.version === "HTTP/1.0" && !r.headers.some(([n]) => n === "Host");
    for (const violation of timedOut ? [] : check(r, answer, { ops })) {
      // Without a Host, Bun builds a relative URL that src/http cannot construct a Request from: part of that finding.
      const finding = violation.finding === "5xx" && noHost ? "http10-no-host-500" : violation.finding;
      if (finding !== "5xx" && answer.status >= 500) run.known5xx += 1;
      run.violations.push({ ...violation, finding, request: `#${i} ${violation.request}` });
    }
    // HTTP/1.0 without Host is routed as the same request with one.
    if (noHost && answer.status !== 0 && !r.truncated) {
      const twin = await exchange(o.baseUrl, { ...r, headers: [["Host", host], ...r.headers] }).catch(() => null);
      if (twin && twin.status !== answer.status) {
        if (twin.status >= 500) run.known5xx += 1;
        add(i, "http10-no-host-routing", `${answer.status} without Host, ${twin.status} with it`, r);
      }
    }
    if (answer.status === 201 && r.op.path === "/orders" && r.method === "POST") {
      try {
        const id = (JSON.parse(answer.body.toString("utf8")) as { id?: unknown }).id;
        if (typeof id === "string") run.orders.push(id);
      } catch {}
    }
  };

  const start = cpuMs(o.pid);
  const inFlight = new Set<Promise<void>>();
  for (let i = 0; i < o.count; i++) {
    if (o.only !== undefined && i !== o.only) continue;
    const [r] = fc.sample(all, { seed: requestSeed(o.seed, o.service, i), numRuns: 1 });
    if (!r) continue;
    if (lanes <= 1 || heavy(r) || o.only !== undefined) {
      await Promise.all(inFlight);
      await one(i, r, true);
    } else {
      while (inFlight.size >= lanes) await Promise.race(inFlight);
      const p: Promise<void> = one(i, r, false).finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
    if (o.progress && (i + 1) % 1000 === 0) o.progress(i + 1);
  }
  await Promise.all(inFlight);
  run.cpuMs = cpuMs(o.pid) - start;
  run.memory = memoryMb(o.pid);
  return run;
}

/** One line per service and one per finding, for the log. */
export function summary(runs: ServiceRun[], seed: number, after: Violation[] = []): string {
  const lines = [`fuzz seed ${seed} (replay: FUZZ_SEED=${seed}; one request: bun run fuzz --seed ${seed} --service S --only N)`];
  for (const run of runs) {
    const statuses = [...run.statuses]
      .sort(([a], [b]) => a - b)
      .map(([s, n]) => `${s === 0 ? "none" : s}: ${n}`)
      .join(", ");
    lines.push(
      `${run.service}: ${run.tried} requests; statuses ${statuses}; server CPU ${(run.cpuMs / Math.max(1, run.tried)).toFixed(2)} ms/request on average; ` +
        `${run.measured} heavy ones measured alone: at most ${run.maxRequestCpuMs} ms of CPU and ${run.maxPeakGrowthMb.toFixed(0)} MB of peak RSS growth for one; ` +
        `RSS ${run.memory.rss.toFixed(0)} MB after it, peak ${run.memory.peak.toFixed(0)} MB so far`,
    );
    lines.push(`  most CPU: ${run.maxRequest.slice(0, 240)}`);
  }
  const byFinding = new Map<string, Violation[]>();
  for (const v of [...runs.flatMap((r) => r.violations), ...after]) byFinding.set(v.finding, [...(byFinding.get(v.finding) ?? []), v]);
  for (const [finding, vs] of byFinding) lines.push(`  ${finding}: ${vs.length}, e.g. ${vs[0]?.detail} <- ${vs[0]?.request.slice(0, 400)}`);
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------
// A whole shop

/**
 * How far the shop's RSS may peak above where it stood when the requests began (VmHWM, reset
 * then), in MB. A one-process shop on PGlite in memory starts at about 500 MB (the database's
 * WebAssembly heap), so the bound is on the growth.
 */
const MAX_RSS_GROWTH_MB = 250;
/**
 * Server CPU per request on average over a run, in ms: background work (pollers, sweeps, the JIT
 * warming up) is in it too, so it is checked only over runs of at least MEAN_CPU_MIN_REQUESTS.
 */
const MAX_MEAN_CPU_MS = 50;
const MEAN_CPU_MIN_REQUESTS = 500;

/** What a run against a whole shop found. */
export interface ShopRun {
  seed: number;
  runs: ServiceRun[];
  /** 5xx answers counted by each service's own metrics (answers the client never saw included). */
  serverErrors: Record<string, number>;
  /** The shop's RSS at the end and its peak over the run, MB. */
  memory: { start: number; rss: number; peak: number };
  /** Rules broken afterwards (metrics, RSS, CPU, orders, the audit, an ordinary order). */
  after: Violation[];
}

/** 5xx answers in shop_http_requests_total of one service. */
async function serverErrors(baseUrl: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  let n = 0;
  for (const m of text.matchAll(/^shop_http_requests_total\{(.*)\} (\d+)$/gm)) if (/status="5\d\d"/.test(m[1] ?? "")) n += Number(m[2]);
  return n;
}

/** Options of a run against a running shop. */
export interface ShopRunOptions {
  urls: Record<"registry" | "wallet" | "storage", string>;
  pid: number;
  seed: number;
  /** Requests per service. */
  count: number;
  lanes?: number;
  progress?: (service: string, done: number) => void;
}

/**
 * Fuzzes each service of a running shop in turn, then checks what must hold afterwards: no 5xx in
 * the metrics beyond the known findings the client saw, RSS and mean CPU per request bounded, every
 * acknowledged order still there, the audit clean and an ordinary order completed.
 */
export async function fuzzShop(o: ShopRunOptions): Promise<ShopRun> {
  const runs: ServiceRun[] = [];
  // The start (migrations, PGlite's own start) has a peak of its own; the bound is on the run's.
  resetPeak(o.pid);
  const startRss = memoryMb(o.pid).rss;
  for (const [service, baseUrl] of Object.entries(o.urls)) {
    const doc = (await (await fetch(`${baseUrl}/openapi.json`)).json()) as OpenApiDocument;
    runs.push(
      await fuzzService({
        service,
        baseUrl,
        doc,
        seed: o.seed,
        count: o.count,
        pid: o.pid,
        lanes: o.lanes,
        progress: o.progress && ((n) => o.progress?.(service, n)),
      }),
    );
  }
  const after: Violation[] = [];
  const add = (finding: Finding, detail: string, request = "(after the run)") => after.push({ finding, detail, request });
  const errors: Record<string, number> = {};
  for (const run of runs) {
    const counted = await serverErrors(o.urls[run.service as keyof ShopRunOptions["urls"]]);
    errors[run.service] = counted;
    // A body cut short may be counted as a 500 that the client never sees (issue 24's slow body).
    const unexplained = counted - run.known5xx - run.truncated;
    if (unexplained > 0)
      add(
        "metrics-5xx",
        `${run.service}: ${counted} answers counted with a 5xx status in shop_http_requests_total, ${unexplained} not explained by the findings above`,
      );
    else if (counted > run.known5xx)
      add("slow-body-500", `${run.service}: ${counted - run.known5xx} 5xx counted in the metrics for ${run.truncated} bodies cut short`);
    const mean = run.cpuMs / Math.max(1, run.tried);
    if (run.tried >= MEAN_CPU_MIN_REQUESTS && mean > MAX_MEAN_CPU_MS)
      add("cpu", `${run.service}: ${mean.toFixed(2)} ms of server CPU per request on average (bound ${MAX_MEAN_CPU_MS})`);
  }
  for (const id of runs.flatMap((r) => r.orders)) {
    const res = await fetch(`${o.urls.registry}/orders/${id}`);
    await res.body?.cancel();
    if (res.status !== 200) add("lost-order", `order ${id} was answered 201 but GET /orders/${id} is ${res.status}`);
  }
  for (const line of await ordinaryOrder(o.urls)) add("ordinary-order", line);
  for (const line of await cleanAudit(o.urls)) add("audit", line);
  const memory = memoryMb(o.pid);
  if (memory.peak - startRss > MAX_RSS_GROWTH_MB) {
    add(
      "rss-total",
      `the shop's RSS peaked at ${memory.peak.toFixed(0)} MB over the run, ${(memory.peak - startRss).toFixed(0)} MB above its ${startRss.toFixed(0)} MB at the start (bound ${MAX_RSS_GROWTH_MB}); ${memory.rss.toFixed(0)} MB at the end`,
    );
  }
  return { seed: o.seed, runs, serverErrors: errors, memory: { ...memory, start: startRss }, after };
}

/** A deposit, a receipt and an order of one unit, on ids the fuzzer never uses: the order completes. */
async function ordinaryOrder(urls: ShopRunOptions["urls"]): Promise<string[]> {
  const user = 2_147_483_000;
  const admin = { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, "content-type": "application/json" };
  const { products } = (await (await fetch(`${urls.registry}/products`)).json()) as { products: { id: number; price_cents: number }[] };
  const product = products[products.length - 1];
  if (!product) return ["GET /products listed no product"];
  const deposit = await fetch(`${urls.wallet}/wallets/${user}/deposits`, {
    method: "POST",
    headers: admin,
    body: JSON.stringify({ amount_cents: product.price_cents }),
  });
  const receipt = await fetch(`${urls.storage}/stock/${product.id}/receipts`, {
    method: "POST",
    headers: admin,
    body: JSON.stringify({ quantity: 1 }),
  });
  // A product the fuzzer filled to the columns' limit refuses the receipt (409 stock_limit) and has stock anyway.
  if (deposit.status !== 201 || ![201, 409].includes(receipt.status))
    return [`ordinary order: deposit ${deposit.status}, receipt ${receipt.status}`];
  const placed = await fetch(`${urls.registry}/orders`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user_id: user, items: [{ product_id: product.id, quantity: 1 }] }),
  });
  const order = (await placed.json()) as { id?: string };
  if (placed.status !== 201 || !order.id) return [`ordinary order: POST /orders answered ${placed.status}`];
  const deadline = Date.now() + 30_000;
  for (;;) {
    const status = ((await (await fetch(`${urls.registry}/orders/${order.id}`)).json()) as { status?: string }).status;
    if (status === "completed") return [];
    if (status !== "pending" || Date.now() > deadline) return [`ordinary order ${order.id}: ${status}, not completed`];
    await Bun.sleep(25);
  }
}

/** The shop's own audit (src/saga/audit) once every saga has settled: its violations, none when clean. */
async function cleanAudit(urls: ShopRunOptions["urls"]): Promise<string[]> {
  let last: string[] = [];
  try {
    await eventually(
      async () => {
        last = (await auditShop(httpSources(urls, TEST_ADMIN_TOKEN))).violations;
        if (last.length > 0) throw new Error(last.join("; "));
      },
      60_000,
      250,
    );
    return [];
  } catch {
    return last.map((v) => `audit: ${v}`);
  }
}
