/** A list of violations that names at most a few per rule and counts the rest, so a broken shop still gives a readable answer. */

/** Violations listed per rule before the rest are only counted. */
export const SHOWN_PER_RULE = 50;

/** Collects violations under a rule name; `list()` gives them with one "N more" line per rule that overflowed. */
export class Violations {
  private readonly shown: string[] = [];
  private readonly hidden = new Map<string, number>();
  private readonly perRule = new Map<string, number>();

  constructor(
    private readonly prefix: string,
    private readonly limit = SHOWN_PER_RULE,
  ) {}

  /** Records one violation of `rule`. */
  add(rule: string, message: string): void {
    const n = (this.perRule.get(rule) ?? 0) + 1;
    this.perRule.set(rule, n);
    if (n <= this.limit) this.shown.push(`${this.prefix}${message}`);
    else this.hidden.set(rule, (this.hidden.get(rule) ?? 0) + 1);
  }

  /** Records `total` violations of `rule` of which `messages` are the first few (a query with a LIMIT). */
  addCounted(rule: string, total: number, messages: string[]): void {
    for (const m of messages.slice(0, this.limit)) this.add(rule, m);
    const shown = Math.min(messages.length, this.limit);
    if (total > shown) {
      this.perRule.set(rule, (this.perRule.get(rule) ?? 0) + total - shown);
      this.hidden.set(rule, (this.hidden.get(rule) ?? 0) + total - shown);
    }
  }

  /** How many violations were recorded, shown or not. */
  get total(): number {
    let n = 0;
    for (const v of this.perRule.values()) n += v;
    return n;
  }

  list(): string[] {
    return [...this.shown, ...[...this.hidden].map(([rule, n]) => `${this.prefix}${rule}: ${n} more not shown`)];
  }
}
