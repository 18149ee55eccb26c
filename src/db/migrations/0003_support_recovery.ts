import type { Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  // A locked-out person's request to reset their two-factor authentication: confirmed from their registered inbox,
  // decided by an operator, applied only after a waiting period the owner can cancel from that inbox.
  await db.schema
    .createTable("support_requests")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
    .addColumn("email", "text", (c) => c.notNull())
    .addColumn("message", "text", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("confirm_token_hash", "text", (c) => c.notNull().unique())
    .addColumn("cancel_token_hash", "text", (c) => c.unique())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("confirm_expires_at", "bigint", (c) => c.notNull())
    .addColumn("confirmed_at", "bigint")
    .addColumn("decided_at", "bigint")
    .addColumn("decided_by", "text")
    .addColumn("decision_note", "text")
    .addColumn("resets_at", "bigint")
    .addColumn("completed_at", "bigint")
    .addColumn("ip", "text")
    .addColumn("user_agent", "text")
    .execute();
  await db.schema.createIndex("support_requests_status_idx").on("support_requests").columns(["status", "resets_at"]).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("support_requests").execute();
}
