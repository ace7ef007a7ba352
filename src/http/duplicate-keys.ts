/**
 * One linear pass over a JSON body's text, before anything parses it, for two things the parser
 * would not refuse:
 *
 * - Nesting deeper than a bound (`MAX_JSON_DEPTH`): no body the API takes nests past 3, and a
 *   deep one costs every later stage (parse, validation, error paths) in proportion to its depth.
 * - A key that appears twice in one object: JSON.parse keeps the last of two equal keys
 *   (`{"user_id":1,...,"user_id":2}` is user 2), so a body could say one thing to a reader and
 *   another to the validator. Keys are compared as decoded strings (`"a"` and `"\u0061"` are the
 *   same key).
 *
 * The pass costs time and memory in proportion to the text (each key is kept once in its
 * object's set; nothing else is copied); the path of the finding (`items.0.product_id`) is built
 * only once something is found. It only looks at the text's structure: a body that is not valid
 * JSON is left to the parser, which reports it as malformed.
 */

/** How deep objects and arrays may nest in a JSON body (`{"a":[{}]}` is 3). */
export const MAX_JSON_DEPTH = 32;

/** What the scan found: a repeated key or nesting past the bound, with its dotted path; null when neither. */
export type JsonFinding = { kind: "duplicate_key"; path: string } | { kind: "too_deep"; path: string } | null;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** The first repeated key or excess nesting in `text` (see the module's comment). */
export function scanJson(text: string, maxDepth = MAX_JSON_DEPTH): JsonFinding {
  // Per open object or array: its keys so far (null in an array), and where in it the scan is (key or index).
  const keys: (Set<string> | null)[] = [];
  const at: (string | number)[] = [];
  let expectKey = false;
  // The path to a repeated key (in the innermost open object), or to where nesting went too deep.
  const path = (key?: string) => (key === undefined ? at : [...at.slice(0, -1), key]).join(".");
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === QUOTE) {
      let end = i + 1;
      let escaped = false;
      while (end < text.length) {
        const c = text.charCodeAt(end);
        if (c === BACKSLASH) {
          escaped = true;
          end += 2;
        } else if (c === QUOTE) break;
        else end++;
      }
      if (end >= text.length) return null;
      const top = keys[keys.length - 1];
      if (expectKey && top) {
        let key: string;
        try {
          key = escaped ? (JSON.parse(text.slice(i, end + 1)) as string) : text.slice(i + 1, end);
        } catch {
          return null;
        }
        if (top.has(key)) return { kind: "duplicate_key", path: path(key) };
        top.add(key);
        at[at.length - 1] = key;
        expectKey = false;
      }
      i = end;
    } else if (ch === 0x7b /* { */ || ch === 0x5b /* [ */) {
      if (keys.length === maxDepth) return { kind: "too_deep", path: path() };
      keys.push(ch === 0x7b ? new Set() : null);
      // The parent's current key or index names this level; its own position starts at 0 (arrays).
      at.push(0);
      expectKey = ch === 0x7b;
    } else if (ch === 0x7d /* } */ || ch === 0x5d /* ] */) {
      keys.pop();
      at.pop();
      expectKey = false;
    } else if (ch === 0x2c /* , */) {
      const top = keys.length - 1;
      if (top >= 0 && keys[top] === null) at[top] = (at[top] as number) + 1;
      expectKey = top >= 0 && keys[top] !== null;
    }
  }
  return null;
}
