/**
 * The picture of one order's trace in docs/operations.md (docs/trace-rejected-order.svg): starts an OTLP/HTTP
 * receiver and the shop exporting to it (one process, in-memory bus, PGlite in memory), places an
 * order the wallet refuses, waits for its compensations, stops the shop (SIGTERM flushes the last
 * spans) and draws the order's trace as a waterfall, in SVG and as text on stdout.
 *
 *   bun run trace-picture            # .tmp/trace-rejected-order.svg
 *   bun run trace-picture --docs     # docs/trace-rejected-order.svg, the one docs/operations.md shows
 */
import { join } from "node:path";
import { z } from "zod";
import { eventually } from "../test/support/eventually";
import { type AttributeValue, type ReceivedSpan, startOtlpReceiver, tracesOfOrder } from "../test/support/otlp-receiver";
import { type ShopProcess, startShopProcess } from "../test/support/process";
import { type Row, waterfallRows } from "./trace-picture/waterfall";

/** The docs' copy is rewritten only when asked (`--docs`); otherwise the picture goes to .tmp/. */
const OUTPUT = process.argv.includes("--docs")
  ? join(import.meta.dir, "..", "docs", "trace-rejected-order.svg")
  : join(import.meta.dir, "..", ".tmp", "trace-rejected-order.svg");
/** User 5 has 10.00 in config/wallet.yaml and product 3 costs 249.99: wallet refuses, storage reserves, then releases. */
const REJECTED_ORDER = { user_id: 5, items: [{ product_id: 3, quantity: 1 }] };
/** Placed and settled first, so the pictured order meets a warm process (the first order pays for JIT and first queries). */
const WARM_UP_ORDER = { user_id: 1, items: [{ product_id: 10, quantity: 1 }] };
const SETTLE_TIMEOUT_MS = 30_000;

const OrderView = z.object({
  id: z.string(),
  status: z.string(),
  reason: z.string().nullable(),
  compensation: z.string().nullable(),
});
type OrderView = z.infer<typeof OrderView>;

/** What one run of the shop left: the settled order, every span received, and which module listened on which port. */
interface Capture {
  order: OrderView;
  spans: ReceivedSpan[];
  portModules: Map<number, string>;
}

/** A trace ready to draw. */
interface Waterfall {
  title: string;
  subtitle: string;
  rows: Row[];
  t0: bigint;
  totalMs: number;
}

/** Runs the shop with tracing on until one rejected order is settled, then stops it and keeps what it exported. */
async function captureRejectedOrder(): Promise<Capture> {
  const receiver = startOtlpReceiver();
  let shop: ShopProcess | undefined;
  try {
    shop = await startShopProcess(
      ["--data-dir", ":memory:"],
      {
        HOST: "127.0.0.1",
        REGISTRY_PORT: "0",
        WALLET_PORT: "0",
        STORAGE_PORT: "0",
        LOG_LEVEL: "info",
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      },
      3,
    );
    const registry = shop.urls.registry;
    if (!registry) throw new Error("registry did not say where it listens");
    await eventually(async () => (await fetch(`${registry}/health/ready`)).ok, SETTLE_TIMEOUT_MS);
    await settledOrder(registry, await placeOrder(registry, WARM_UP_ORDER));
    const order = await settledOrder(registry, await placeOrder(registry, REJECTED_ORDER));
    if (order.status !== "rejected")
      throw new Error(`order ${order.id} was ${order.status}, not rejected: has the seed in config/*.yaml changed?`);
    const portModules = new Map(Object.entries(shop.urls).map(([module, url]) => [Number(new URL(url).port), module]));
    const code = await shop.stop("SIGTERM");
    shop = undefined;
    if (code !== 0) console.warn(`the shop exited with ${code}: its last spans may be missing`);
    return { order, spans: [...receiver.spans], portModules };
  } finally {
    if (shop) shop.proc.kill("SIGKILL");
    receiver.stop();
  }
}

async function placeOrder(registry: string, order: typeof REJECTED_ORDER): Promise<string> {
  const res = await fetch(`${registry}/orders`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(order),
  });
  if (res.status !== 201) throw new Error(`POST /orders answered ${res.status}: ${await res.text()}`);
  return OrderView.parse(await res.json()).id;
}

/** Waits until the order is decided and, if rejected, its compensations are confirmed. */
function settledOrder(registry: string, id: string): Promise<OrderView> {
  return eventually(async () => {
    const o = OrderView.parse(await (await fetch(`${registry}/orders/${id}`)).json());
    return o.status !== "pending" && o.compensation !== "pending" && o;
  }, SETTLE_TIMEOUT_MS);
}

/** The order's trace: the one holding its `POST /orders` span. */
function orderWaterfall(capture: Capture): Waterfall {
  const traces = [...tracesOfOrder(capture.spans, capture.order.id).values()];
  const spans = traces.find((t) => t.some((s) => s.name === "POST /orders"));
  if (!spans) throw new Error(`no trace of order ${capture.order.id} holds its POST /orders span (${capture.spans.length} spans received)`);
  const rows = waterfallRows(spans, capture.portModules);
  // biome-ignore lint/complexity/useMathMinMax: bigints, which Math.min does not take
  const t0 = spans.reduce((min, s) => (s.start < min ? s.start : min), spans[0]?.start ?? 0n);
  // biome-ignore lint/complexity/useMathMinMax: bigints, which Math.max does not take
  const tEnd = spans.reduce((max, s) => (s.end > max ? s.end : max), t0);
  const modules = new Set(rows.map((r) => r.module));
  const { order } = capture;
  return {
    title: `One rejected order's trace: POST /orders to the compensations (${rows.length} spans, ${modules.size} modules)`,
    subtitle: `order ${order.id}: ${order.status} (${order.reason ?? "no reason"}), compensation ${order.compensation ?? "none"}; trace ${spans[0]?.traceId}`,
    rows,
    t0,
    totalMs: Number(tEnd - t0) / 1e6,
  };
}

const ms = (ns: bigint) => Number(ns) / 1e6;
/** A point in time, whatever its measured length: a message written (`create <topic>`) or a decision (`order <status>`). */
const isInstant = (s: ReceivedSpan) => s.attributes["messaging.operation.type"] === "create" || "shop.order.status" in s.attributes;
const formatMs = (v: number) => `${v < 1 ? v.toFixed(2) : v.toFixed(1)} ms`;

/** An attribute shown as text; absent or not a scalar: undefined. */
const attributeText = (v: AttributeValue | undefined) => (typeof v === "string" || typeof v === "number" ? String(v) : undefined);

/** What a row adds besides its name: a decision's reason, a compensation's action. */
function detailOf(row: Row): string {
  const a = row.span.attributes;
  if ("shop.order.status" in a) return attributeText(a["shop.order.reason"]) ?? "";
  if (a["shop.compensation"] === true) return attributeText(a["shop.compensation.action"]) ?? "no action recorded";
  return "";
}

/** The waterfall as plain text: start offset, duration, module, indented name, a bar of 40 columns. */
function textWaterfall(w: Waterfall): string {
  const nameWidth = Math.max(...w.rows.map((r) => r.depth * 2 + r.span.name.length));
  const lines = [
    w.title,
    w.subtitle,
    "",
    `${"start".padStart(9)} ${"duration".padStart(9)}  ${"module".padEnd(9)}${"span".padEnd(nameWidth)}  0${formatMs(w.totalMs).padStart(39)}`,
  ];
  for (const r of w.rows) {
    const start = ms(r.span.start - w.t0);
    const from = Math.min(39, Math.floor((start / w.totalMs) * 40));
    const to = Math.max(from + 1, Math.ceil((ms(r.span.end - w.t0) / w.totalMs) * 40));
    const bar = isInstant(r.span) ? `${" ".repeat(from)}◆` : `${" ".repeat(from)}${"█".repeat(to - from)}`;
    const duration = isInstant(r.span) ? "instant" : formatMs(ms(r.span.end - r.span.start));
    const notes = [
      detailOf(r),
      r.orphan ? `parent ${r.span.parentSpanId} not in the trace` : "",
      r.linksOut ? `links to ${r.linksOut} span(s) of other traces` : "",
    ];
    const name = `${"  ".repeat(r.depth)}${r.span.name}`.padEnd(nameWidth);
    lines.push(
      `${formatMs(start).padStart(9)} ${duration.padStart(9)}  ${r.module.padEnd(9)}${name}  ${bar.padEnd(40)}  ${notes.filter(Boolean).join("; ")}`.trimEnd(),
    );
  }
  return lines.join("\n");
}

const escapeXml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string);

const COLORS: Record<string, { fill: string; text: string }> = {
  registry: { fill: "#4e79a7", text: "#2f5680" },
  wallet: { fill: "#e8912d", text: "#a85f0c" },
  storage: { fill: "#59a14f", text: "#3b7534" },
};
const OTHER_COLOR = { fill: "#9c9c9c", text: "#666666" };
const colorOf = (module: string) => COLORS[module] ?? OTHER_COLOR;

/** The picture's geometry: a column of names, one of modules, then the time axis. */
const G = { width: 900, pad: 16, rowH: 20, top: 100, indent: 12, charW: 6.6, font: 11, moduleW: 64, durationW: 56 };

interface Layout {
  moduleX: number;
  barX0: number;
  barX1: number;
  x: (ms: number) => number;
  height: number;
}

function layoutOf(w: Waterfall): Layout {
  const nameW = Math.max(...w.rows.map((r) => r.depth * G.indent + r.span.name.length * G.charW));
  const moduleX = G.pad + nameW + 12;
  const barX0 = moduleX + G.moduleW + 8;
  const barX1 = G.width - G.pad - G.durationW;
  const scale = (barX1 - barX0) / w.totalMs;
  return { moduleX, barX0, barX1, x: (v) => barX0 + v * scale, height: G.top + w.rows.length * G.rowH + 34 };
}

/** A round tick step giving at most about 10 ticks. */
function tickStep(totalMs: number): number {
  for (let p = 10 ** Math.floor(Math.log10(totalMs / 10)); ; p *= 10) {
    for (const m of [1, 2, 5]) if (totalMs / (m * p) <= 10) return m * p;
  }
}

function svgHeader(w: Waterfall, l: Layout): string[] {
  const legend = Object.entries(COLORS).map(([name, c], i) => {
    const x = G.pad + i * 90;
    return `<rect x="${x}" y="58" width="12" height="10" rx="2" fill="${c.fill}"/><text x="${x + 17}" y="67" fill="${c.text}">${escapeXml(name)}</text>`;
  });
  const dx = G.pad + 3 * 90;
  return [
    `<text x="${G.pad}" y="24" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="15" font-weight="600" fill="#1f2328">${escapeXml(w.title)}</text>`,
    `<text x="${G.pad}" y="43" fill="#59636e">${escapeXml(w.subtitle)}</text>`,
    ...legend,
    `<path d="M ${dx + 6} 57 l 6 6 l -6 6 l -6 -6 z" fill="#ffffff" stroke="#1f2328"/><text x="${dx + 17}" y="67" fill="#59636e">an instant (a message written, a decision)</text>`,
    `<text x="${G.pad}" y="${G.top - 8}" fill="#59636e">span (indented under its parent)</text>`,
    `<text x="${l.moduleX}" y="${G.top - 8}" fill="#59636e">module</text>`,
  ];
}

/** How the picture was made, and why start times fall on whole milliseconds. */
function svgFooter(l: Layout): string {
  const note =
    "bun run trace-picture: one process (in-memory bus, PGlite in memory); span starts are whole milliseconds (the SDK takes them from Date.now())";
  return `<text x="${G.pad}" y="${l.height - 10}" fill="#59636e" font-size="10">${escapeXml(note)}</text>`;
}

function svgAxis(w: Waterfall, l: Layout): string[] {
  const step = tickStep(w.totalMs);
  const out: string[] = [];
  for (let t = 0; t <= w.totalMs + 1e-9; t += step) {
    const x = l.x(t).toFixed(1);
    out.push(`<line x1="${x}" y1="${G.top - 4}" x2="${x}" y2="${G.top + w.rows.length * G.rowH + 4}" stroke="#d0d7de" stroke-width="1"/>`);
    out.push(`<text x="${x}" y="${G.top - 8}" text-anchor="middle" fill="#59636e">${escapeXml(`${t} ms`)}</text>`);
  }
  return out;
}

const rowMid = (i: number) => G.top + i * G.rowH + G.rowH / 2;
/** Text over grid lines and bars stays readable: a white outline under each glyph. */
const HALO = `paint-order="stroke" stroke="#ffffff" stroke-width="3" stroke-linejoin="round"`;

/** Every other row shaded, drawn first so the grid and the bars lie on top. */
function svgStripes(w: Waterfall): string[] {
  return w.rows.flatMap((_, i) =>
    i % 2 === 0 ? [`<rect x="${G.pad / 2}" y="${G.top + i * G.rowH}" width="${G.width - G.pad}" height="${G.rowH}" fill="#f6f8fa"/>`] : [],
  );
}

/** Elbow lines from each parent's name to its children's, so a child far below its parent is still found. */
function svgTreeGuides(w: Waterfall): string[] {
  return w.rows.flatMap((r, i) => {
    if (r.parentRow < 0) return [];
    const x = G.pad + (r.depth - 1) * G.indent + 4;
    return [
      `<path d="M ${x} ${rowMid(r.parentRow) + 6} V ${rowMid(i)} H ${G.pad + r.depth * G.indent - 2}" fill="none" stroke="#c4cbd3" stroke-width="1"/>`,
    ];
  });
}

function svgRow(r: Row, i: number, w: Waterfall, l: Layout): string[] {
  const mid = rowMid(i);
  const c = colorOf(r.module);
  const start = ms(r.span.start - w.t0);
  const end = ms(r.span.end - w.t0);
  const bold = r.span.attributes["shop.compensation"] === true || "shop.order.status" in r.span.attributes ? ` font-weight="700"` : "";
  const out = [
    `<text x="${G.pad + r.depth * G.indent}" y="${mid + 4}" fill="#1f2328"${bold}>${escapeXml(r.span.name)}${r.orphan ? " (orphan)" : ""}</text>`,
    `<text x="${l.moduleX}" y="${mid + 4}" fill="${c.text}">${escapeXml(r.module)}</text>`,
  ];
  const x0 = l.x(start);
  const detail = detailOf(r);
  if (isInstant(r.span)) {
    out.push(`<path d="M ${x0.toFixed(1)} ${mid - 6} l 6 6 l -6 6 l -6 -6 z" fill="${c.fill}" stroke="#1f2328" stroke-width="0.8"/>`);
    if (detail) out.push(`<text x="${(x0 + 10).toFixed(1)}" y="${mid + 4}" fill="#59636e" ${HALO}>${escapeXml(detail)}</text>`);
    return out;
  }
  const x1 = Math.max(l.x(end), x0 + 2);
  out.push(`<rect x="${x0.toFixed(1)}" y="${mid - 5}" width="${(x1 - x0).toFixed(1)}" height="10" rx="2" fill="${c.fill}"/>`);
  const label = [formatMs(end - start), detail].filter(Boolean).join(", ");
  const rightFits = x1 + 4 + label.length * G.charW <= G.width - G.pad;
  const lx = rightFits ? x1 + 4 : x0 - 4;
  out.push(
    `<text x="${lx.toFixed(1)}" y="${mid + 4}" text-anchor="${rightFits ? "start" : "end"}" fill="#59636e" ${HALO}>${escapeXml(label)}</text>`,
  );
  return out;
}

/** The waterfall as a standalone SVG, readable at about 900 px. */
function svgWaterfall(w: Waterfall): string {
  const l = layoutOf(w);
  const body = [
    ...svgStripes(w),
    ...svgHeader(w, l),
    ...svgAxis(w, l),
    ...svgTreeGuides(w),
    ...w.rows.flatMap((r, i) => svgRow(r, i, w, l)),
    svgFooter(l),
  ];
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${G.width}" height="${l.height}" viewBox="0 0 ${G.width} ${l.height}" font-family="ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace" font-size="${G.font}">`,
    `<title>${escapeXml(w.title)}</title>`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    ...body.map((e) => `  ${e}`),
    "</svg>",
    "",
  ].join("\n");
}

const capture = await captureRejectedOrder();
const waterfall = orderWaterfall(capture);
console.log(textWaterfall(waterfall));
await Bun.write(OUTPUT, svgWaterfall(waterfall));
console.log(`\nwrote ${OUTPUT}`);
