/** The rows of a trace's waterfall (scripts/trace-picture.ts): every span in time order, each with its parent's row. */
import type { ReceivedSpan } from "../../test/support/otlp-receiver";

/** One row of the waterfall: a span, its depth in the parent tree, and the module (consumer group) it ran in. */
export interface Row {
  span: ReceivedSpan;
  depth: number;
  module: string;
  /** Its parent's row (-1: a root). */
  parentRow: number;
  /** Its parent is named but not in the trace. */
  orphan: boolean;
  /** It links to spans of other traces (a batch's `send`, `consume`, `transaction`). */
  linksOut: number;
}

/** The module a span ran in: its consumer group, the module serving its HTTP port, else its parent's. */
function moduleOf(span: ReceivedSpan, parentModule: string, portModules: Map<number, string>): string {
  const group = span.attributes["messaging.consumer.group.name"];
  if (typeof group === "string") return group;
  const port = span.attributes["server.port"];
  if (typeof port === "number" && portModules.has(port)) return portModules.get(port) as string;
  return parentModule;
}

const byStart = (a: ReceivedSpan, b: ReceivedSpan) =>
  a.start !== b.start ? (a.start < b.start ? -1 : 1) : a.end > b.end ? -1 : a.end < b.end ? 1 : 0;

/**
 * The trace's spans in time order, each with its depth in the parent tree, its module and its
 * parent's row (a parent always comes before its children). Ordered as a tree walk (a parent,
 * then its children's subtrees) a branch that starts early was drawn after every span of an
 * earlier sibling's subtree, however late those were: storage's work at 10 ms came after
 * wallet's at 60 ms. Equal starts keep the walk's order, so a parent stays above its child.
 */
export function waterfallRows(spans: ReceivedSpan[], portModules: Map<number, string>): Row[] {
  const ids = new Set(spans.map((s) => s.spanId));
  const children = new Map<string | null, ReceivedSpan[]>();
  for (const s of spans) {
    const key = s.parentSpanId && ids.has(s.parentSpanId) ? s.parentSpanId : null;
    children.set(key, [...(children.get(key) ?? []), s]);
  }
  for (const list of children.values()) list.sort(byStart);
  const rows: Row[] = [];
  const visit = (span: ReceivedSpan, depth: number, parentRow: number, parentModule: string) => {
    const module = moduleOf(span, parentModule, portModules);
    const orphan = span.parentSpanId !== null && !ids.has(span.parentSpanId);
    const linksOut = span.links.filter((l) => l.traceId !== span.traceId).length;
    const row = rows.push({ span, depth, module, parentRow, orphan, linksOut }) - 1;
    for (const child of children.get(span.spanId) ?? []) visit(child, depth + 1, row, module);
  };
  for (const root of children.get(null) ?? []) visit(root, 0, -1, "?");
  const startOf = (i: number) => (rows[i] as Row).span.start;
  const order = rows.map((_, i) => i).sort((a, b) => (startOf(a) < startOf(b) ? -1 : startOf(a) > startOf(b) ? 1 : a - b));
  const newIndex = new Map(order.map((old, i) => [old, i]));
  return order.map((old) => {
    const r = rows[old] as Row;
    return { ...r, parentRow: r.parentRow < 0 ? -1 : (newIndex.get(r.parentRow) as number) };
  });
}
