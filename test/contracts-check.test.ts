/** `bun run contracts:check` and the rules behind it: which changes of src/contracts break a reader or a writer of the baseline. */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { incompatibilities } from "../scripts/contracts/compatibility";
import { createMessage, parseMessage } from "../src/contracts";

const ROOT = join(import.meta.dir, "..");
const BASELINE = join(ROOT, "src/contracts/baseline.asyncapi.json");

type Json = { [key: string]: any };
const baseline = (): Json => JSON.parse(readFileSync(BASELINE, "utf8"));
/** The envelope schema of `type` in `doc`, and its payload's properties. */
const envelope = (doc: Json, type: string): Json => doc.components.messages[type].payload;
const payload = (doc: Json, type: string): Json => envelope(doc, type).properties.payload;
/** What a reader of the baseline's version reads: its own version and the next. */
const readsOwn = (_type: string) => [1, 2];
/** `OrderRejected` read as `versions`, every other type as readsOwn. */
const rejectedReads = (versions: number[]) => (type: string) => (type === "OrderRejected" ? versions : readsOwn(type));

/** `current` made from the baseline by `change`, compared with the baseline. */
function check(change: (doc: Json) => void, readable: (type: string) => number[] = readsOwn) {
  const current = baseline();
  change(current);
  return incompatibilities(baseline(), current, readable);
}

async function cli(...args: string[]): Promise<{ code: number; out: string }> {
  const proc = Bun.spawn(["bun", join(ROOT, "scripts/contracts-check.ts"), ...args], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, out: out + err };
}

describe("contracts:check", () => {
  test("the tree is compatible with its committed baseline", async () => {
    const r = await cli();
    expect(r.out).toContain("compatible with the baseline");
    expect(r.code).toBe(0);
  });

  test("fails, naming the change, when the code would break the baseline's readers", async () => {
    // A baseline whose OrderRejected had a reason this code no longer knows: old writers may send it.
    const old = baseline();
    payload(old, "OrderRejected").properties.reason.enum.push("lost_in_post");
    const file = join(mkdtempSync(join(tmpdir(), "contracts-")), "baseline.json");
    writeFileSync(file, JSON.stringify(old));
    const r = await cli(`--baseline=${file}`);
    expect(r.code).toBe(1);
    expect(r.out).toContain("OrderRejected payload.reason: enum value(s) removed: lost_in_post (breaks readers)");
  });

  test("additive changes and prose are compatible", () => {
    expect(
      check((d) => {
        payload(d, "OrderCreated").properties.coupon = { type: "string", maxLength: 40 };
        payload(d, "StepSucceeded").description = "reworded";
        d.components.messages.OrderCreated.examples = [];
        payload(d, "OrderRejected").properties.message.description = "why, for people";
      }),
    ).toEqual([]);
  });

  test("each breaking change is named with the side it breaks", () => {
    const only = (f: ReturnType<typeof check>) => f.map((x) => `${x.type} ${x.path}: ${x.change} [${x.breaks}]`);
    expect(
      only(
        check(
          (d) => payload(d, "OrderCreated").required.push("coupon") && (payload(d, "OrderCreated").properties.coupon = { type: "string" }),
        ),
      ),
    ).toEqual(["OrderCreated payload.coupon: required field added [readers]"]);
    expect(only(check((d) => delete payload(d, "OrderCreated").properties.total_cents))).toEqual([
      "OrderCreated payload.total_cents: required field removed [writers]",
    ]);
    expect(only(check((d) => (payload(d, "OrderCreated").properties.user_id.type = "string")))).toEqual([
      'OrderCreated payload.user_id: type "integer" -> "string" [both]',
    ]);
    expect(only(check((d) => payload(d, "OrderRejected").properties.reason.enum.pop()))).toEqual([
      "OrderRejected payload.reason: enum value(s) removed: unknown_order [readers]",
    ]);
    expect(only(check((d) => payload(d, "OrderRejected").properties.reason.enum.push("fraud")))).toEqual([
      "OrderRejected payload.reason: enum value(s) added: fraud [writers]",
    ]);
    expect(only(check((d) => (payload(d, "OrderCreated").properties.items.items.properties.quantity.maximum = 5000)))).toEqual([
      "OrderCreated payload.items[].quantity: maximum 1000 -> 5000 [writers]",
    ]);
    expect(only(check((d) => (payload(d, "OrderCreated").properties.items.minItems = 2)))).toEqual([
      "OrderCreated payload.items: minItems 1 -> 2 [readers]",
    ]);
    expect(only(check((d) => delete d.components.messages.OrderCompensated))).toContain(
      "OrderCompensated (type): message type removed: records old writers send are dead-lettered [readers]",
    );
  });

  test("a new version helps readers only where the old version is still read; old readers take one version ahead at most", () => {
    const bump = (to: number) => (d: Json) => {
      envelope(d, "OrderRejected").properties.version.const = to;
      payload(d, "OrderRejected").properties.reason.enum.pop();
    };
    // Raised, but this code reads only 2 and 3: records of version 1 still on the topic would be dead-lettered.
    expect(check(bump(2), rejectedReads([2, 3])).map((f) => f.change)).toEqual([
      "version 1 (the baseline's) is no longer read: records still on the topic would be dead-lettered",
      "enum value(s) removed: unknown_order",
    ]);
    // Raised, and version 1 still read (with its own schema): the narrowed enum is no longer a reader's problem.
    expect(check(bump(2), rejectedReads([1, 2, 3]))).toEqual([]);
    expect(check(bump(3), rejectedReads([1, 2, 3])).map((f) => f.change)).toEqual(["version 1 -> 3: old readers accept 1 and 2 only"]);
  });
});

describe("reading versions side by side", () => {
  const message = createMessage("StepSucceeded", { order_id: crypto.randomUUID(), service: "wallet" });
  test("a reader takes the next version, ignoring its new optional fields, and refuses one further", () => {
    const next = parseMessage(JSON.stringify({ ...message, version: 2, payload: { ...message.payload, warehouse: "north" } }));
    expect(next.ok).toBe(true);
    if (next.ok) expect(next.message.payload).toEqual(message.payload);
    expect(parseMessage(JSON.stringify({ ...message, version: 3 }))).toEqual({ ok: false, error: "unsupported version 3" });
    expect(parseMessage(JSON.stringify({ ...message, version: 0 }))).toMatchObject({ ok: false });
  });
});
