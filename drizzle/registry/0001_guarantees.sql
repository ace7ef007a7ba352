CREATE TABLE "registry"."idempotency_keys" (
	"key" text PRIMARY KEY NOT NULL,
	"request_hash" text NOT NULL,
	"status_code" integer NOT NULL,
	"response" jsonb NOT NULL,
	"order_id" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "registry"."unknown_orders" (
	"order_id" uuid PRIMARY KEY NOT NULL,
	"service" text NOT NULL,
	"first_seen_at" timestamp with time zone DEFAULT now() NOT NULL,
	"answered_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "registry"."dead_letters" ADD COLUMN "redrives" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "registry"."dead_letters" ADD COLUMN "last_redrive_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "registry"."dead_letters" ADD COLUMN "resolved_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "registry"."orders" ADD COLUMN "wallet_undone" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "registry"."orders" ADD COLUMN "storage_undone" boolean DEFAULT false NOT NULL;--> statement-breakpoint
CREATE INDEX "idempotency_keys_created" ON "registry"."idempotency_keys" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "inbox_processed_at_index" ON "registry"."inbox" USING btree ("processed_at");