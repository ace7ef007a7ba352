/**
 * JSON.parse keeps the last of two equal keys in an object (`{"user_id":1,...,"user_id":2}` is
 * user 2), so a body can say one thing to a reader and another to the validator. This scan finds
 * the first key that appears twice in one object, compared as decoded strings (`"a"` and
 * `"\u0061"` are the same key), and its path (`items.0.product_id`). It only looks at the text's
 * structure: a body that is not valid JSON is left to the parser, which reports it as malformed.
 */

/** One open object or array: the keys seen so far (null in an array), the path to it, where it is now. */
interface Level {
  keys: Set<string> | null;
  path: string[];
  /** The current key (in an object) or element index (in an array). */
  at: string;
  index: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** The dotted path of the first key repeated within one object of `text`, or null if there is none (or `text` is not JSON enough to tell). */
export function duplicateKey(text: string): string | null {
  const stack: Level[] = [];
  let expectKey = false;
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
      const top = stack[stack.length - 1];
      if (expectKey && top?.keys) {
        let key: string;
        try {
          key = escaped ? (JSON.parse(text.slice(i, end + 1)) as string) : text.slice(i + 1, end);
        } catch {
          return null;
        }
        if (top.keys.has(key)) return [...top.path, key].join(".");
        top.keys.add(key);
        top.at = key;
        expectKey = false;
      }
      i = end;
    } else if (ch === 0x7b /* { */ || ch === 0x5b /* [ */) {
      const parent = stack[stack.length - 1];
      const path = parent ? [...parent.path, parent.keys ? parent.at : String(parent.index)] : [];
      stack.push({ keys: ch === 0x7b ? new Set() : null, path, at: "", index: 0 });
      expectKey = ch === 0x7b;
    } else if (ch === 0x7d /* } */ || ch === 0x5d /* ] */) {
      stack.pop();
      expectKey = false;
    } else if (ch === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top && !top.keys) top.index++;
      expectKey = top?.keys != null;
    }
  }
  return null;
}
