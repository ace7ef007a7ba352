/** A small JSON client for black-box tests. */

/** ADMIN_TOKEN of every shop the tests and the bench start (testEnv, processEnv, split shop). */
export const TEST_ADMIN_TOKEN = "test-admin-token-0123456789";

/** Headers for admin writes (deposits, receipts, /admin/*): `call(base, "POST", path, body, adminHeaders)`. */
export const adminHeaders: Readonly<Record<string, string>> = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };

/** A response with its parsed JSON body. */
export interface Reply<T = unknown> {
  status: number;
  body: T;
  headers: Headers;
}

/** Sends a request to `base + path`; a string body is sent as is, anything else as JSON. */
export async function call<T = any>(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Reply<T>> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)["content-type"] ??= "application/json";
  }
  const res = await fetch(`${base}${path}`, init);
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: res.status, body: parsed as T, headers: res.headers };
}

/** GET returning the body; throws unless 200. */
export async function getJson<T = any>(base: string, path: string): Promise<T> {
  const r = await call<T>(base, "GET", path);
  if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}
