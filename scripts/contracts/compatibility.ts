/**
 * Compatibility of the bus messages between two AsyncAPI documents: the committed baseline (what
 * the running version reads and writes) and the one built from src/contracts now. A change
 * breaks *readers* when a new reader would refuse what an old writer wrote (a required field
 * added, an enum value removed, a bound narrowed), and *writers* when an old reader would refuse
 * what a new writer writes (a required field removed, an enum value added, a bound widened).
 * Descriptions and examples are not contracts. docs/adr/0015-message-versions-side-by-side.md.
 */

/** A JSON Schema node as z.toJSONSchema writes it (draft-07). */
type Schema = { [key: string]: unknown };

/** One incompatible difference of a message type. */
export interface Finding {
  type: string;
  /** Where in the envelope: `payload.items[].quantity`. */
  path: string;
  change: string;
  /** readers: a new reader refuses old records; writers: an old reader refuses new records. */
  breaks: "readers" | "writers" | "both";
}

/** What the current code reads, per message type: the envelope versions it accepts. */
export type ReadableVersions = (type: string) => number[];

const isObject = (v: unknown): v is Schema => typeof v === "object" && v !== null && !Array.isArray(v);
const asSchema = (v: unknown): Schema => (isObject(v) ? v : {});

/** Lower bounds: raising one narrows what is valid. Upper bounds: lowering one narrows it. */
const LOWER = ["minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"] as const;
const UPPER = ["maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"] as const;
/** Keywords whose any change is incompatible both ways. */
const EXACT = ["type", "const", "pattern", "format", "anyOf", "oneOf", "allOf", "not", "additionalProperties", "multipleOf"] as const;

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** Compares one schema node of `type` at `path`, appending what breaks to `out`. */
function compare(type: string, path: string, old: Schema, now: Schema, out: Finding[]): void {
  const add = (change: string, breaks: Finding["breaks"]) => out.push({ type, path: path || "(envelope)", change, breaks });
  for (const k of EXACT) {
    if (!same(old[k], now[k])) add(`${k} ${JSON.stringify(old[k]) ?? "unset"} -> ${JSON.stringify(now[k]) ?? "unset"}`, "both");
  }
  for (const [keys, narrower] of [
    [LOWER, (a: number, b: number) => b > a],
    [UPPER, (a: number, b: number) => b < a],
  ] as const) {
    for (const k of keys) {
      const a = old[k];
      const b = now[k];
      if (same(a, b)) continue;
      const narrowed = typeof a !== "number" || (typeof b === "number" && narrower(a, b));
      add(`${k} ${a ?? "unset"} -> ${b ?? "unset"}`, narrowed ? "readers" : "writers");
    }
  }
  if (Array.isArray(old.enum) || Array.isArray(now.enum)) {
    const a = new Set(Array.isArray(old.enum) ? old.enum : []);
    const b = new Set(Array.isArray(now.enum) ? now.enum : []);
    const removed = [...a].filter((v) => !b.has(v));
    const added = [...b].filter((v) => !a.has(v));
    if (removed.length) add(`enum value(s) removed: ${removed.join(", ")}`, "readers");
    if (added.length) add(`enum value(s) added: ${added.join(", ")}`, "writers");
  }
  const oldProps = asSchema(old.properties);
  const nowProps = asSchema(now.properties);
  const oldRequired = new Set(Array.isArray(old.required) ? (old.required as string[]) : []);
  const nowRequired = new Set(Array.isArray(now.required) ? (now.required as string[]) : []);
  const at = (name: string) => (path ? `${path}.${name}` : name);
  for (const name of new Set([...Object.keys(oldProps), ...Object.keys(nowProps)])) {
    const wasRequired = oldRequired.has(name);
    const isRequired = nowRequired.has(name);
    if (!(name in nowProps)) {
      // An optional field dropped is harmless: old readers did without it, new readers strip it.
      if (wasRequired) out.push({ type, path: at(name), change: "required field removed", breaks: "writers" });
      continue;
    }
    if (!(name in oldProps)) {
      // A new optional field is the additive change every reader of the previous version takes.
      if (isRequired) out.push({ type, path: at(name), change: "required field added", breaks: "readers" });
      continue;
    }
    if (wasRequired && !isRequired) out.push({ type, path: at(name), change: "field made optional", breaks: "writers" });
    if (!wasRequired && isRequired) out.push({ type, path: at(name), change: "field made required", breaks: "readers" });
    compare(type, at(name), asSchema(oldProps[name]), asSchema(nowProps[name]), out);
  }
  if (old.items !== undefined || now.items !== undefined) compare(type, `${path}[]`, asSchema(old.items), asSchema(now.items), out);
}

/** The envelope schema of each message type in an AsyncAPI document of the shop. */
function messagesOf(doc: unknown): Map<string, Schema> {
  const messages = asSchema(asSchema(asSchema(doc).components).messages);
  return new Map(Object.entries(messages).map(([type, m]) => [type, asSchema(asSchema(m).payload)]));
}

/** The channel (topic key) each message type travels on. */
function channelsOf(doc: unknown): Map<string, string> {
  const out = new Map<string, string>();
  for (const [channel, c] of Object.entries(asSchema(asSchema(doc).channels))) {
    for (const type of Object.keys(asSchema(asSchema(c).messages))) out.set(type, channel);
  }
  return out;
}

/** The version a message type's writers put in the envelope (its `version` const). */
const versionOf = (envelope: Schema): number | undefined => {
  const v = asSchema(asSchema(envelope.properties).version).const;
  return typeof v === "number" ? v : undefined;
};

/** What is left of the envelope once its version is taken out (compared on its own). */
const withoutVersion = (envelope: Schema): Schema => {
  const { version: _version, ...properties } = asSchema(envelope.properties);
  return { ...envelope, properties };
};

/**
 * Every incompatibility between `baseline` and `current`. A breaking change of a type is allowed
 * only where its version was raised and the current code still reads the baseline's version
 * (`readable`); a change that breaks old readers always fails (they must be upgraded first, and
 * the baseline moved, before a writer changes). Returns [] when the two are compatible.
 */
export function incompatibilities(baseline: unknown, current: unknown, readable: ReadableVersions): Finding[] {
  const out: Finding[] = [];
  const before = messagesOf(baseline);
  const after = messagesOf(current);
  const beforeChannels = channelsOf(baseline);
  const afterChannels = channelsOf(current);
  for (const [type, old] of before) {
    const now = after.get(type);
    if (!now) {
      out.push({ type, path: "(type)", change: "message type removed: records old writers send are dead-lettered", breaks: "readers" });
      continue;
    }
    if (beforeChannels.get(type) !== afterChannels.get(type)) {
      out.push({ type, path: "(channel)", change: `moved from ${beforeChannels.get(type)} to ${afterChannels.get(type)}`, breaks: "both" });
    }
    const found: Finding[] = [];
    compare(type, "", withoutVersion(old), withoutVersion(now), found);
    const from = versionOf(old);
    const to = versionOf(now);
    if (from === undefined || to === undefined) {
      out.push({ type, path: "version", change: "no version const in the envelope schema", breaks: "both" });
      continue;
    }
    if (to < from) out.push({ type, path: "version", change: `version lowered ${from} -> ${to}`, breaks: "both" });
    // Old readers take `from` and `from + 1`: a writer jumping further is refused by them.
    if (to > from + 1)
      out.push({
        type,
        path: "version",
        change: `version ${from} -> ${to}: old readers accept ${from} and ${from + 1} only`,
        breaks: "writers",
      });
    if (!readable(type).includes(from)) {
      out.push({
        type,
        path: "version",
        change: `version ${from} (the baseline's) is no longer read: records still on the topic would be dead-lettered`,
        breaks: "readers",
      });
    }
    for (const f of found) {
      // New readers that still read the baseline's version with its own schema are not broken by it.
      if (f.breaks === "readers" && to > from && readable(type).includes(from)) continue;
      out.push(f);
    }
  }
  for (const type of after.keys()) {
    if (!before.has(type)) {
      out.push({ type, path: "(type)", change: "new message type: readers of the baseline dead-letter it", breaks: "writers" });
    }
  }
  return out;
}
