/**
 * The shop's clients: each order of the workload goes to registry's real POST /orders route
 * (router.request(), in process). A request that failed (5xx, an error, no answer because the
 * process died) is sent again later with the same Idempotency-Key, up to three attempts; every
 * answer for a key must name the same order.
 */
import type { Router } from "../src/http/router";
import type { RunningModule } from "../src/module";
import type { Incarnation } from "./processes";
import type { Random } from "./random";
import type { Trace } from "./trace";
import type { OrderRequest } from "./workload";

/** A request to send (again): the workload's order `i`, its `attempt`th time. */
interface Attempt {
  i: number;
  attempt: number;
}

/** The clients placing the workload, their retries, and what their answers said. */
export class OrderClient {
  /** The next new order of the workload. */
  private next = 0;
  /** Requests that failed (5xx, an error, a connection the crash dropped), to send again with the same Idempotency-Key. */
  private readonly retries: Attempt[] = [];
  /** Requests waiting for their answer. */
  readonly inFlight = new Set<Promise<void>>();
  /** The orders the answers named, in order. */
  readonly orderIds: string[] = [];
  /** The order each request created, to name it on the request's line. */
  readonly requestOrder = new Map<number, string>();
  /** Client-side check: a key's answers all name one order. */
  readonly violations: string[] = [];

  constructor(
    private readonly orders: OrderRequest[],
    private readonly trace: Trace,
  ) {}

  /** Some order is still to be sent: a new one or a failed one again. */
  hasWork(): boolean {
    return this.next < this.orders.length || this.retries.length > 0;
  }

  /** Sends a failed request again a while later (the client's retry), or the next new one, to `inc`. */
  placeOne(sched: Random, inc: Incarnation): void {
    const again = this.retries.length > 0 && (this.next >= this.orders.length || sched.chance(0.3)) ? this.retries.shift() : undefined;
    if (again) this.place(again, inc);
    else this.place({ i: this.next++, attempt: 1 }, inc);
  }

  /** Traces the request and sends it, without waiting for the answer. */
  private place(a: Attempt, inc: Incarnation): void {
    const body = this.orders[a.i] as OrderRequest;
    const router = (inc.modules.get("registry") as RunningModule).router;
    const name = `request ${a.i + 1}${a.attempt > 1 ? ` (attempt ${a.attempt})` : ""}`;
    this.trace.line(
      `${name}: POST /orders user ${body.user_id} ${body.items.map((it) => `${it.quantity}x product ${it.product_id}`).join(", ")}`,
    );
    const p = this.send(a, name, body, router, inc).finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }

  /** POSTs the order and traces its answer; a failed one is sent again later, up to the third attempt. */
  private async send(a: Attempt, name: string, body: OrderRequest, router: Router, inc: Incarnation): Promise<void> {
    const retry = () => {
      if (a.attempt < 3) this.retries.push({ i: a.i, attempt: a.attempt + 1 });
    };
    try {
      const res = await router.request("/orders", {
        method: "POST",
        headers: { "content-type": "application/json", "idempotency-key": `sim-request-${a.i + 1}` },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      if (inc.dead) {
        this.trace.line(`${name}: no answer (the process died)`);
        return retry();
      }
      this.answered(a.i, name, res, text);
      if (res.status >= 500) retry();
    } catch (err) {
      this.trace.line(`${name}: failed: ${(err as Error).message}`);
      retry();
    }
  }

  /** Records and traces an answer; an order it names must be the one every earlier answer for the key named. */
  private answered(i: number, name: string, res: Response, text: string): void {
    const id = res.status === 201 || res.status === 200 ? (JSON.parse(text) as { id: string }).id : null;
    if (id) {
      const earlier = this.requestOrder.get(i + 1);
      if (earlier && earlier !== id)
        this.violations.push(
          `client: request ${i + 1} was answered with two orders, order ${earlier} and order ${id}, for one Idempotency-Key`,
        );
      this.orderIds.push(id);
      this.requestOrder.set(i + 1, id);
    }
    const replayed = res.headers.get("idempotent-replayed") === "true" ? " (replayed)" : "";
    this.trace.line(`${name}: ${res.status}${id ? ` ${id}${replayed}` : ` ${text.slice(0, 120)}`}`);
  }
}
