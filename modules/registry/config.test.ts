import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, loadModuleConfig } from "../../src/config";
import { RegistryConfigSchema } from "./config";

const CONFIG_DIR = join(import.meta.dir, "../../config");
const scratch = mkdtempSync(join(tmpdir(), "shop-registry-config-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** registry.yaml from config/ with REGISTRY_TRACE_URL set to `url`. */
const withTraceUrl = (url: string) => loadModuleConfig("registry", RegistryConfigSchema, CONFIG_DIR, { REGISTRY_TRACE_URL: url });

/** The ConfigError `fn` throws. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("no ConfigError");
}

test("trace_url is unset by default (config/registry.yaml leaves it empty)", () => {
  expect(loadModuleConfig("registry", RegistryConfigSchema, CONFIG_DIR, {}).trace_url).toBeUndefined();
});

test.each(["http://localhost:16686/trace/{trace_id}", "https://tempo.example/explore?trace={trace_id}&from=shop"])(
  "trace_url %s is taken as it is",
  (url) => {
    expect(withTraceUrl(url).trace_url).toBe(url);
  },
);

test.each([
  ["http://localhost:16686/search", "{trace_id} exactly once"],
  ["http://localhost:16686/trace/{trace_id}/{trace_id}", "{trace_id} exactly once"],
  ["ftp://traces.example/{trace_id}", "expected an http:// or https:// URL"],
  ["javascript:alert(1)//{trace_id}", "expected an http:// or https:// URL"],
  ["localhost:16686/trace/{trace_id}", "expected an http:// or https:// URL"],
])("REGISTRY_TRACE_URL=%s is a config error naming the variable", (url, says) => {
  const err = configError(() => withTraceUrl(url));
  expect(err.setting).toBe("REGISTRY_TRACE_URL");
  expect(err.message).toStartWith(`REGISTRY_TRACE_URL=${JSON.stringify(url)}: `);
  expect(err.message).toContain(says);
});

test("a bad trace_url in the file is named by file and key", () => {
  const dir = mkdtempSync(join(scratch, "case-"));
  writeFileSync(join(dir, "registry.yaml"), "port: 8000\nconsumer_group: registry\ntrace_url: http://localhost:16686/search\n");
  const err = configError(() => loadModuleConfig("registry", RegistryConfigSchema, dir, {}));
  expect(err.setting).toBe(`${join(dir, "registry.yaml")}: trace_url`);
  expect(err.message).toContain("{trace_id} exactly once");
});
