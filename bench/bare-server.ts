/**
 * The floor for `GET /products`: a bare Bun.serve answering every request with the body in
 * the file named by argv[2] (as JSON). Prints its URL on stdout, then serves until killed.
 */
const file = process.argv[2];
if (!file) throw new Error("usage: bun bench/bare-server.ts <body-file>");
const body = await Bun.file(file).text();
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch: () => new Response(body, { headers: { "content-type": "application/json" } }),
});
console.log(`http://127.0.0.1:${server.port}`);

export {};
