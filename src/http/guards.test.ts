/** The shell's request checks on their own: repeated JSON keys, Host values. (Through a running shop: test/hostile-http.test.ts.) */
import { describe, expect, test } from "bun:test";
import { duplicateKey } from "./duplicate-keys";
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

describe("validHost", () => {
  test("names, addresses and bracketed IPv6, with a port up to 65535", () => {
    for (const host of ["localhost", "localhost:8000", "shop.example.com", "10.0.0.5:80", "[::1]", "[::1]:8000", "xn--bcher-kva.example", "a_b:65535"]) {
      expect([host, validHost(host)]).toEqual([host, true]);
    }
  });

  test("spaces, slashes, user info, empty names and ports past 65535 are not hosts", () => {
    for (const host of ["a b", "", ":80", "evil/x", "user@evil", "localhost:99999", "localhost:", "[::1", "host:port", "a\tb"]) {
      expect([host, validHost(host)]).toEqual([host, false]);
    }
  });
});
