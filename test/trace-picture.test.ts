/** The trace picture of docs/operations.md (bun run trace-picture): its rows in time order, each under its parent. */
import { expect, test } from "bun:test";
import { waterfallRows } from "../scripts/trace-picture/waterfall";
import type { ReceivedSpan } from "./support/otlp-receiver";

const span = (spanId: string, parentSpanId: string | null, startMs: number, endMs: number, group?: string): ReceivedSpan => ({
  service: "shop",
  resource: {},
  traceId: "t",
  spanId,
  parentSpanId,
  name: spanId,
  kind: 1,
  start: BigInt(startMs) * 1_000_000n,
  end: BigInt(endMs) * 1_000_000n,
  attributes: group ? { "messaging.consumer.group.name": group } : {},
  links: [],
  status: 0,
});

test("rows come in time order, a parent above its children, each pointing at its parent's row", () => {
  // The shape of a rejected order: wallet's branch starts first and runs long; storage's starts
  // later than wallet's first span but long before wallet's last.
  const rows = waterfallRows(
    [
      span("create", null, 1, 1),
      span("wallet-process", "create", 6, 8, "wallet"),
      span("wallet-late", "wallet-process", 60, 64),
      span("storage-process", "create", 10, 11, "storage"),
      span("send", "create", 1, 9), // starts with its parent: still below it
    ],
    new Map(),
  );
  expect(rows.map((r) => r.span.spanId)).toEqual(["create", "send", "wallet-process", "storage-process", "wallet-late"]);
  const rowOf = (id: string) => rows.findIndex((r) => r.span.spanId === id);
  expect(rows.map((r) => (r.parentRow < 0 ? null : rows[r.parentRow]?.span.spanId))).toEqual([
    null,
    "create",
    "create",
    "create",
    "wallet-process",
  ]);
  expect(rows[rowOf("wallet-late")]).toMatchObject({ depth: 2, module: "wallet" });
  expect(rows[rowOf("storage-process")]).toMatchObject({ depth: 1, module: "storage" });
});
