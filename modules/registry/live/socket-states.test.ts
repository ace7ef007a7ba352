/** What the kernel says of a connection (Linux): a client that does not read shows a closed receive window; one that reads does not. */
import { expect, test } from "bun:test";
import { connect, type Socket } from "node:net";
import { eventually } from "../../../test/support/eventually";
import { connectionKey, normalizeAddress, zeroWindows } from "./socket-states";

test("normalizeAddress: IPv4 as is (also mapped into IPv6), IPv6 as eight groups without leading zeros", () => {
  expect(normalizeAddress("192.0.2.7")).toBe("192.0.2.7");
  expect(normalizeAddress("::ffff:192.0.2.7")).toBe("192.0.2.7");
  expect(normalizeAddress("::1")).toBe("0:0:0:0:0:0:0:1");
  expect(normalizeAddress("2001:DB8::0a:1")).toBe("2001:db8:0:0:0:0:a:1");
  expect(normalizeAddress("fe80::1%eth0")).toBe("fe80:0:0:0:0:0:0:1");
});

test("a client that stopped reading shows a closed receive window once its buffers are full; a reading one does not", async () => {
  const controllers: ReadableStreamDefaultController<Uint8Array>[] = [];
  const server = Bun.serve({
    port: 0,
    idleTimeout: 0,
    fetch: () =>
      new Response(
        new ReadableStream<Uint8Array>({ start: (c) => void controllers.push(c) }, new ByteLengthQueuingStrategy({ highWaterMark: 0 })),
      ),
  });
  const port = server.port ?? 0;
  const open = (localAddress: string, read: boolean) =>
    new Promise<Socket>((resolve) => {
      const s = connect({ host: "127.0.0.1", port, localAddress }, () => {
        s.write("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        resolve(s);
      });
      s.once("data", () => (read ? s.on("data", () => {}) : s.pause()));
      s.on("error", () => {});
    });
  const [reader, stuck] = [await open("127.0.0.31", true), await open("127.0.0.32", false)];
  const ports = new Set([port]);
  const keyOf = (s: Socket) => connectionKey(port, normalizeAddress(s.localAddress ?? ""), s.localPort ?? 0);
  try {
    await eventually(() => controllers.length === 2);
    const chunk = new Uint8Array(16_384);
    const states = await eventually(async () => {
      for (const c of controllers) c.enqueue(chunk);
      const found = await zeroWindows(ports);
      return found?.get(keyOf(stuck)) === true ? found : false;
    }, 60_000);
    expect(states.get(keyOf(reader))).toBe(false);
  } finally {
    reader.destroy();
    stuck.destroy();
    await server.stop(true);
  }
}, 90_000);
