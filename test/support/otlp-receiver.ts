/**
 * An OTLP/HTTP receiver for tests, benches and the trace picture in docs/: accepts `POST /v1/traces`
 * with a JSON body (what the shop's exporter sends) and keeps every span, flattened, with the
 * service that sent it. Answers like a collector: 200 with an empty partial-success object.
 */

/** An attribute value as OTLP/JSON encodes it, reduced to a plain value. */
export type AttributeValue = string | number | boolean | null | AttributeValue[];

/** One received span, flattened: ids in hex, times in nanoseconds (bigint), attributes as a plain object. */
export interface ReceivedSpan {
  service: string;
  /** The attributes of the resource that sent it (service.*, telemetry.sdk.*). */
  resource: Record<string, AttributeValue>;
  traceId: string;
  spanId: string;
  parentSpanId: string | null;
  name: string;
  /** OTLP's SpanKind numbers: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  start: bigint;
  end: bigint;
  attributes: Record<string, AttributeValue>;
  links: { traceId: string; spanId: string }[];
  /** OTLP's status code: 0 unset, 1 ok, 2 error. */
  status: number;
}

/** A running receiver. */
export interface OtlpReceiver {
  /** Base URL, for OTEL_EXPORTER_OTLP_ENDPOINT. */
  url: string;
  spans: ReceivedSpan[];
  /** Export requests received (each may hold many spans). */
  requests: number;
  stop(): void;
}

type OtlpValue = {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values?: OtlpValue[] };
};
type OtlpAttribute = { key: string; value: OtlpValue };
type OtlpSpan = {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes?: OtlpAttribute[];
  links?: { traceId: string; spanId: string }[];
  status?: { code?: number };
};
type OtlpBody = { resourceSpans?: { resource?: { attributes?: OtlpAttribute[] }; scopeSpans?: { spans?: OtlpSpan[] }[] }[] };

function plain(v: OtlpValue | undefined): AttributeValue {
  if (!v) return null;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(plain);
  return null;
}

const attributesOf = (list: OtlpAttribute[] | undefined): Record<string, AttributeValue> =>
  Object.fromEntries((list ?? []).map((a) => [a.key, plain(a.value)]));

/** Starts a receiver on a free loopback port. */
export function startOtlpReceiver(): OtlpReceiver {
  const receiver: OtlpReceiver = { url: "", spans: [], requests: 0, stop: () => server.stop(true) };
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      if (req.method !== "POST" || new URL(req.url).pathname !== "/v1/traces") return new Response("not found", { status: 404 });
      if (!(req.headers.get("content-type") ?? "").startsWith("application/json")) return new Response("JSON only", { status: 415 });
      const body = (await req.json()) as OtlpBody;
      receiver.requests += 1;
      for (const rs of body.resourceSpans ?? []) {
        const resource = attributesOf(rs.resource?.attributes);
        const service = String(resource["service.name"] ?? "");
        for (const ss of rs.scopeSpans ?? []) {
          for (const s of ss.spans ?? []) {
            receiver.spans.push({
              service,
              resource,
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId || null,
              name: s.name,
              kind: s.kind,
              start: BigInt(s.startTimeUnixNano),
              end: BigInt(s.endTimeUnixNano),
              attributes: attributesOf(s.attributes),
              links: (s.links ?? []).map((l) => ({ traceId: l.traceId, spanId: l.spanId })),
              status: s.status?.code ?? 0,
            });
          }
        }
      }
      return Response.json({ partialSuccess: {} });
    },
  });
  receiver.url = `http://127.0.0.1:${server.port}`;
  return receiver;
}

/** The spans of the traces that mention `orderId` (as `shop.order_id`), by trace id. */
export function tracesOfOrder(spans: ReceivedSpan[], orderId: string): Map<string, ReceivedSpan[]> {
  const ids = new Set(spans.filter((s) => s.attributes["shop.order_id"] === orderId).map((s) => s.traceId));
  const out = new Map<string, ReceivedSpan[]>();
  for (const s of spans) {
    if (!ids.has(s.traceId)) continue;
    const list = out.get(s.traceId) ?? [];
    list.push(s);
    out.set(s.traceId, list);
  }
  for (const list of out.values()) list.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  return out;
}
