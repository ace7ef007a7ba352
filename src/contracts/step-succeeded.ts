/** `success_topics`: a participant did its part of an order. */
import { z } from "zod";
import { ServiceName } from "./envelope";

export const STEP_SUCCEEDED = "StepSucceeded";

/** Payload of StepSucceeded (version 1). */
export const StepSucceededSchema = z.object({
  order_id: z.uuid(),
  service: ServiceName,
});
export type StepSucceeded = z.infer<typeof StepSucceededSchema>;
