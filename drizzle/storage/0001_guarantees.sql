ALTER TABLE "storage"."dead_letters" ADD COLUMN "redrives" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "storage"."dead_letters" ADD COLUMN "last_redrive_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "storage"."dead_letters" ADD COLUMN "resolved_at" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "inbox_processed_at_index" ON "storage"."inbox" USING btree ("processed_at");--> statement-breakpoint
-- Starting stock is now recorded as a first receipt; give stock seeded before this one its receipt, so that receipts = available + reserved.
INSERT INTO "storage"."receipts" ("product_id", "quantity")
SELECT s."product_id", s."available" + s."reserved" - coalesce(r."total", 0)
FROM "storage"."stock" s
LEFT JOIN (SELECT "product_id", sum("quantity") AS "total" FROM "storage"."receipts" GROUP BY "product_id") r ON r."product_id" = s."product_id"
WHERE s."available" + s."reserved" - coalesce(r."total", 0) > 0;
