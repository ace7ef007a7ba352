/** Headless Chromium for tests: the binary and flags, and a page driven over the DevTools protocol (CDP). */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eventually } from "./eventually";

/** Debian's chromium (or chromium-browser); throws with the install hint when absent. */
export function chromiumBinary(): string {
  const chromium = Bun.which("chromium") ?? Bun.which("chromium-browser");
  if (!chromium) throw new Error("chromium is not installed (apt-get install chromium)");
  return chromium;
}

/** Flags for a quiet headless run in a container, with `profile` as a fresh user data directory. */
export function chromiumFlags(profile: string): string[] {
  return [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    `--user-data-dir=${profile}`,
  ];
}

/** A fresh profile directory and a way to remove it. */
export function freshProfile(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "shop-chromium-"));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

type Params = Record<string, unknown>;
type CdpMessage = { id?: number; method?: string; params?: Params; sessionId?: string; result?: Params; error?: { message: string } };

/** One tab, attached over CDP. */
interface CdpPage {
  /** Sends a command to the tab. */
  send<T = Params>(method: string, params?: Params): Promise<T>;
  /** Runs `expression` in the page (awaiting a promise) and returns its value as JSON. */
  evaluate<T = unknown>(expression: string): Promise<T>;
  /** Polls `expression` until it is truthy (generous bounds: the machine may be busy). */
  waitFor(expression: string, timeoutMs?: number): Promise<void>;
  /** Loads `url` and waits for the document to be complete. */
  navigate(url: string): Promise<void>;
  /** A PNG of the viewport. */
  screenshot(): Promise<Buffer>;
  /** URLs the page requested so far. */
  requests: string[];
  /** Uncaught exceptions and console errors so far. */
  errors: string[];
}

/** A running browser with one tab. */
export interface Browser {
  page: CdpPage;
  /** Closes the browser (killing it if it does not go) and removes its profile. */
  close(): Promise<void>;
}

/** Starts headless Chromium with a fresh profile and opens one tab of `width` x `height`. */
export async function launchChromium(opts: { width?: number; height?: number } = {}): Promise<Browser> {
  const { width = 1366, height = 900 } = opts;
  const profile = freshProfile();
  const proc = Bun.spawn(
    [
      chromiumBinary(),
      ...chromiumFlags(profile.dir),
      "--remote-debugging-port=0",
      `--window-size=${width},${height}`,
      "--hide-scrollbars",
      "about:blank",
    ],
    { stdout: "ignore", stderr: "pipe" },
  );
  const stop = async () => {
    proc.kill();
    await Promise.race([proc.exited, Bun.sleep(5000)]);
    if (proc.exitCode === null) proc.kill(9);
    profile.remove();
  };
  try {
    const endpoint = await devtoolsEndpoint(proc.stderr);
    const cdp = await connect(endpoint);
    const { targetId } = await cdp.send<{ targetId: string }>("Target.createTarget", { url: "about:blank" });
    const { sessionId } = await cdp.send<{ sessionId: string }>("Target.attachToTarget", { targetId, flatten: true });
    const page = attach(cdp, sessionId);
    await page.send("Page.enable");
    await page.send("Runtime.enable");
    await page.send("Network.enable");
    await page.send("Emulation.setDeviceMetricsOverride", { width, height, deviceScaleFactor: 1, mobile: false });
    return {
      page,
      async close() {
        await cdp.send("Browser.close").catch(() => {});
        cdp.close();
        await stop();
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Reads Chromium's stderr until it names its DevTools endpoint; keeps draining it afterwards. */
async function devtoolsEndpoint(stderr: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stderr.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const deadline = Date.now() + 30_000;
  for (;;) {
    const read = await Promise.race([reader.read(), Bun.sleep(Math.max(0, deadline - Date.now())).then(() => null)]);
    if (read === null) throw new Error(`chromium did not open DevTools within 30 s: ${text.slice(-500)}`);
    if (read.done) throw new Error(`chromium exited: ${text.slice(-500)}`);
    text += decoder.decode(read.value, { stream: true });
    const m = /DevTools listening on (ws:\/\/\S+)/.exec(text);
    if (m?.[1]) {
      void (async () => {
        while (!(await reader.read().catch(() => ({ done: true }))).done);
      })();
      return m[1];
    }
  }
}

interface Connection {
  send<T = Params>(method: string, params?: Params, sessionId?: string): Promise<T>;
  on(sessionId: string, handler: (method: string, params: Params) => void): void;
  close(): void;
}

async function connect(url: string): Promise<Connection> {
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener("open", () => resolve(), { once: true });
    ws.addEventListener("error", () => reject(new Error(`cannot connect to ${url}`)), { once: true });
  });
  let nextId = 1;
  const pending = new Map<number, { resolve: (r: Params) => void; reject: (e: Error) => void; method: string }>();
  const listeners = new Map<string, (method: string, params: Params) => void>();
  ws.addEventListener("message", (e) => {
    const msg = JSON.parse(String(e.data)) as CdpMessage;
    if (msg.id !== undefined) {
      const p = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.error) p?.reject(new Error(`${p.method}: ${msg.error.message}`));
      else p?.resolve(msg.result ?? {});
    } else if (msg.method && msg.sessionId) listeners.get(msg.sessionId)?.(msg.method, msg.params ?? {});
  });
  ws.addEventListener("close", () => {
    for (const p of pending.values()) p.reject(new Error(`${p.method}: connection closed`));
    pending.clear();
  });
  return {
    send<T>(method: string, params: Params = {}, sessionId?: string) {
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        pending.set(id, { resolve: resolve as (r: Params) => void, reject, method });
        ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
      });
    },
    on: (sessionId, handler) => void listeners.set(sessionId, handler),
    close: () => ws.close(),
  };
}

function attach(cdp: Connection, sessionId: string): CdpPage {
  const requests: string[] = [];
  const errors: string[] = [];
  cdp.on(sessionId, (method, params) => {
    if (method === "Network.requestWillBeSent") requests.push(String((params.request as { url?: string } | undefined)?.url));
    if (method === "Runtime.exceptionThrown") errors.push(JSON.stringify(params.exceptionDetails));
    if (method === "Runtime.consoleAPICalled" && params.type === "error") errors.push(JSON.stringify(params.args));
  });
  const page: CdpPage = {
    requests,
    errors,
    send: (method, params) => cdp.send(method, params, sessionId),
    async evaluate<T>(expression: string) {
      const r = await page.send<{ result: { value?: unknown }; exceptionDetails?: { text: string; exception?: { description?: string } } }>(
        "Runtime.evaluate",
        { expression, returnByValue: true, awaitPromise: true },
      );
      if (r.exceptionDetails) throw new Error(r.exceptionDetails.exception?.description ?? r.exceptionDetails.text);
      return r.result.value as T;
    },
    async waitFor(expression, timeoutMs = 30_000) {
      await eventually(async () => Boolean(await page.evaluate(expression)), timeoutMs, 100).catch(() => {
        throw new Error(`still false after ${timeoutMs} ms: ${expression}`);
      });
    },
    async navigate(url) {
      await page.send("Page.navigate", { url });
      await page.waitFor(`location.href === ${JSON.stringify(url)} && document.readyState === "complete"`);
    },
    async screenshot() {
      const { data } = await page.send<{ data: string }>("Page.captureScreenshot", { format: "png" });
      return Buffer.from(data, "base64");
    },
  };
  return page;
}
