import type { Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  // Operator API tokens (`latchkey api-token create`): found by the SHA-256 of the token, like every other token;
  // the token itself is shown once and never stored. Revoked tokens stay listed (revoked_at) for the audit.
  await db.schema
    .createTable("api_tokens")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("token_hash", "text", (c) => c.notNull().unique())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("last_used_at", "bigint")
    .addColumn("revoked_at", "bigint")
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("api_tokens").execute();
}
