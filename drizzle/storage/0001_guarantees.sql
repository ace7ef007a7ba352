ALTER TABLE "storage"."dead_letters" ADD COLUMN "redrives" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "storage"."dead_letters" ADD COLUMN "last_redrive_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "storage"."dead_letters" ADD COLUMN "resolved_at" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "inbox_processed_at_index" ON "storage"."inbox" USING btree ("processed_at");