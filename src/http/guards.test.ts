/** The shell's request checks on their own: repeated JSON keys, Host values. (Through a running shop: test/hostile-http.test.ts.) */
import { describe, expect, test } from "bun:test";
import { MAX_JSON_DEPTH, scanJson } from "./duplicate-keys";

/** The path of the repeated key scanJson finds, or null. */
const duplicateKey = (text: string) => {
  const found = scanJson(text);
  return found?.kind === "duplicate_key" ? found.path : null;
};

import { validHost } from "./guards";

describe("duplicateKey", () => {
  test("finds the first key repeated within one object, by its path", () => {
    expect(duplicateKey('{"a":1,"b":2,"a":3}')).toBe("a");
    expect(duplicateKey('{"items":[{"p":1},{"p":2,"q":1,"q":2}]}')).toBe("items.1.q");
    expect(duplicateKey('{"o":{"x":{"y":1,"y":2}}}')).toBe("o.x.y");
    expect(duplicateKey('[{"a":1},{"a":1,"a":1}]')).toBe("1.a");
    // The same key however it is spelt.
    expect(duplicateKey('{"user_id":1,"user\\u005fid":2}')).toBe("user_id");
  });

  test("equal keys in different objects, keys inside strings, and values equal to keys are not repeats", () => {
    expect(duplicateKey('{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}')).toBeNull();
    expect(duplicateKey('{"a":"\\"a\\":1,\\"a\\"","b":"a"}')).toBeNull();
    expect(duplicateKey('{"a":["a","a"],"b":{"c":"a"}}')).toBeNull();
    expect(duplicateKey('{"":1,"\\"":2}')).toBeNull();
    expect(duplicateKey("[]")).toBeNull();
    expect(duplicateKey("42")).toBeNull();
  });

  test("text that is not JSON is left to the parser", () => {
    for (const text of ["", "{", '{"a":1,"a', '{"a\\u12":1,"a\\u12":2}', "nonsense"]) expect(duplicateKey(text)).toBeNull();
  });
});

describe("scanJson's depth bound", () => {
  test("nesting up to the bound passes; one more level is too deep, named by its path", () => {
    const nest = (depth: number) => `${'{"a":'.repeat(depth - 1)}{}${"}".repeat(depth - 1)}`;
    expect(scanJson(nest(MAX_JSON_DEPTH))).toBeNull();
    expect(scanJson(nest(MAX_JSON_DEPTH + 1))).toEqual({ kind: "too_deep", path: Array(MAX_JSON_DEPTH).fill("a").join(".") });
    expect(scanJson(`${"[".repeat(MAX_JSON_DEPTH)}${"]".repeat(MAX_JSON_DEPTH)}`)).toBeNull();
    expect(scanJson(`{"x":[1,2,${"[".repeat(MAX_JSON_DEPTH)}`)).toEqual({
      kind: "too_deep",
      path: `x.2${".0".repeat(MAX_JSON_DEPTH - 2)}`,
    });
    // Brackets inside strings are not nesting.
    expect(scanJson(`{"a":"${"[{".repeat(1000)}"}`)).toBeNull();
  });

  test("work is linear in the text: 100,000 levels and a million keys are done in one pass", () => {
    const started = process.cpuUsage();
    expect(scanJson('{"a":'.repeat(100_000))?.kind).toBe("too_deep");
    expect(scanJson("[".repeat(1_000_000))?.kind).toBe("too_deep");
    const wide = `{${Array.from({ length: 100_000 }, (_, i) => `"k${i}":${i}`).join(",")}}`;
    expect(scanJson(wide)).toBeNull();
    expect(scanJson(`[${"[1],".repeat(200_000)}1]`)).toBeNull();
    const used = process.cpuUsage(started);
    // Quadratic (the landed scan) takes tens of seconds and gigabytes here; linear, well under one.
    expect((used.user + used.system) / 1000).toBeLessThan(2_000);
  });
});

describe("validHost", () => {
  test("names, addresses and bracketed IPv6, with a port up to 65535", () => {
    for (const host of [
      "localhost",
      "localhost:8000",
      "shop.example.com",
      "10.0.0.5:80",
      "[::1]",
      "[::1]:8000",
      "xn--bcher-kva.example",
      "a_b:65535",
    ]) {
      expect([host, validHost(host)]).toEqual([host, true]);
    }
  });

  test("spaces, slashes, user info, empty names and ports past 65535 are not hosts", () => {
    for (const host of ["a b", "", ":80", "evil/x", "user@evil", "localhost:99999", "localhost:", "[::1", "host:port", "a\tb"]) {
      expect([host, validHost(host)]).toEqual([host, false]);
    }
  });
});
