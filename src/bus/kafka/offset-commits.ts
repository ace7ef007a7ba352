/**
 * Offsets of applied records, committed together a moment later rather than one round trip per
 * batch. Only what the handler applied (its transaction committed) is ever resolved, so nothing
 * unapplied is acknowledged; what was applied but not yet committed when the process dies is
 * delivered again, and the inbox drops it.
 */
import type { EachBatchPayload } from "kafkajs";
import type { Logger } from "../../log";

/** How long an applied record's offset may wait to be committed with the others. */
const COMMIT_AFTER_MS = 1000;

/** The commits of one member: at most one timer, one commit request at a time. */
export class OffsetCommits {
  private timer: Timer | null = null;
  /** Commits every offset resolved so far (kafkajs keeps them per partition); set by the last batch. */
  private commit: (() => Promise<void>) | null = null;
  private last: Promise<void> = Promise.resolve();

  constructor(
    private readonly group: string,
    private readonly log: Logger,
    private readonly afterMs = COMMIT_AFTER_MS,
  ) {}

  /** After `p`'s applied records were resolved: commits them within `afterMs`. */
  later(p: EachBatchPayload): void {
    this.commit = () => p.commitOffsetsIfNecessary(p.uncommittedOffsets());
    this.timer ??= setTimeout(() => {
      this.timer = null;
      this.now().catch((err) => this.log.debug("offset commit failed; the records will be delivered again", { group: this.group, err }));
    }, this.afterMs);
  }

  /** Commits every resolved offset now (after the ones in flight); rejects if the commit fails. */
  now(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const commit = this.commit;
    if (!commit) return this.last;
    const next = this.last.catch(() => {}).then(commit);
    this.last = next;
    return next;
  }

  /** Drops a pending timer (the member stopped). */
  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
