import type { Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  // The active TOTP key (sealed with AES-256-GCM), the last accepted time step (replay barrier) and the active
  // recovery-code batch. Switching batch in one UPDATE voids every older code at once.
  await db.schema.alterTable("users").addColumn("totp_secret_sealed", "text").execute();
  await db.schema.alterTable("users").addColumn("totp_last_step", "bigint").execute();
  await db.schema.alterTable("users").addColumn("totp_enabled_at", "bigint").execute();
  await db.schema.alterTable("users").addColumn("recovery_batch_id", "text").execute();

  await db.schema
    .createTable("totp_setups")
    .addColumn("user_id", "text", (c) => c.primaryKey().references("users.id").onDelete("cascade"))
    .addColumn("secret_sealed", "text", (c) => c.notNull())
    .addColumn("codes_acknowledged_at", "bigint")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("expires_at", "bigint", (c) => c.notNull())
    .execute();

  await db.schema
    .createTable("recovery_codes")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
    .addColumn("batch_id", "text", (c) => c.notNull())
    .addColumn("code_hash", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("used_at", "bigint")
    .execute();
  await db.schema
    .createIndex("recovery_codes_lookup_idx")
    .on("recovery_codes")
    .columns(["user_id", "batch_id", "code_hash"])
    .unique()
    .execute();

  // Codes just issued, sealed, so "Download" and "Print" can show them until the person moves on. Never the active
  // copies: those exist only as hashes.
  await db.schema
    .createTable("recovery_code_reveals")
    .addColumn("user_id", "text", (c) => c.primaryKey().references("users.id").onDelete("cascade"))
    .addColumn("batch_id", "text", (c) => c.notNull())
    .addColumn("codes_sealed", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("expires_at", "bigint", (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("recovery_code_reveals").execute();
  await db.schema.dropTable("recovery_codes").execute();
  await db.schema.dropTable("totp_setups").execute();
  for (const column of ["recovery_batch_id", "totp_enabled_at", "totp_last_step", "totp_secret_sealed"]) {
    await db.schema.alterTable("users").dropColumn(column).execute();
  }
}
