import type { Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  // A person's request to change their login's email address. The confirmation link (to the new address) and the
  // cancel link (to the old one) are found by the SHA-256 of their tokens, like every other token. A newer request
  // voids older ones (voided_at); confirming and cancelling are guarded UPDATEs on the *_at columns (one winner).
  await db.schema
    .createTable("email_changes")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
    .addColumn("old_email", "text", (c) => c.notNull())
    .addColumn("new_email", "text", (c) => c.notNull())
    .addColumn("token_hash", "text", (c) => c.notNull().unique())
    .addColumn("cancel_token_hash", "text", (c) => c.notNull().unique())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("expires_at", "bigint", (c) => c.notNull())
    .addColumn("confirmed_at", "bigint")
    .addColumn("cancelled_at", "bigint")
    .addColumn("voided_at", "bigint")
    .addColumn("ip", "text")
    .addColumn("user_agent", "text")
    .execute();
  await db.schema.createIndex("email_changes_user_idx").on("email_changes").column("user_id").execute();
  // When the address last changed: the Team Members page shows it beside the address.
  await db.schema.alterTable("users").addColumn("email_changed_at", "bigint").execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("users").dropColumn("email_changed_at").execute();
  await db.schema.dropTable("email_changes").execute();
}
