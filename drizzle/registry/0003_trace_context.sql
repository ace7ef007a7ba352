ALTER TABLE "registry"."orders" ADD COLUMN "traceparent" text;--> statement-breakpoint
ALTER TABLE "registry"."unknown_orders" ADD COLUMN "traceparent" text;