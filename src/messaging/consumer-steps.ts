/** The consumer's log lines: one per message of a committed batch ("saga step"), and one per dead letter. */
import type { BusRecord } from "../bus/bus";
import type { Message } from "../contracts";
import type { LogFields, Logger } from "../log";
import type { Applied } from "./consumer-dispatch";

/** A record as read: its message, or why it has none (the error it is dead-lettered with). */
export type Parsed = { record: BusRecord; message: Message | null; error: string | null };

/** What became of one message: its step is logged once the batch committed. */
type StepOutcome = "applied" | "duplicate" | "ignored" | "dead-lettered" | "failed";

/** The fields of a saga step's line: which message, which order, which request, what became of it. */
export function stepFields(group: string, p: Parsed, outcome: StepOutcome, ms?: number): LogFields {
  const m = p.message;
  const fields: LogFields = { outcome, group, topic: p.record.topic };
  if (m)
    Object.assign(fields, {
      step: `${m.type} -> ${group}`,
      type: m.type,
      order_id: m.order_id,
      message_id: m.id,
      request_id: m.request_id,
    });
  else fields.key = p.record.key;
  if (ms !== undefined) fields.duration_ms = Math.round(ms * 10) / 10;
  return fields;
}

/**
 * One line per message of a committed batch (dead letters have their own): applied at info, the
 * rest at debug. `handled` says whether the module consumes a message (else it was ignored).
 */
export function logSteps(
  log: Logger,
  group: string,
  batch: Parsed[],
  applied: Map<string, Applied>,
  handled: (m: Message) => boolean,
): void {
  for (const p of batch) {
    if (!p.message) continue;
    const done = applied.get(p.message.id);
    applied.delete(p.message.id); // the same id again in this batch is a duplicate
    if (done !== undefined) log.info("saga step", { ...stepFields(group, p, "applied", done.ms), ...done.trace });
    else log.debug("saga step", stepFields(group, p, handled(p.message) ? "duplicate" : "ignored"));
  }
}
