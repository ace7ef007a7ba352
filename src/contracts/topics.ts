/** The topics the modules talk over: one per kind of message flow. Names are configurable (`topics:` in each module's YAML); the defaults are the seed's. */
import { z } from "zod";

export const TopicsSchema = z
  .strictObject({
    new_orders: z.string().min(1).default("new_orders"),
    rejected_orders: z.string().min(1).default("rejected_orders"),
    success: z.string().min(1).default("success_topics"),
  })
  .prefault({});
export type Topics = z.infer<typeof TopicsSchema>;
