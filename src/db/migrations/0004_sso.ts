import type { Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  // One OpenID Connect provider per account. The client secret is sealed (AES-256-GCM, bound to the account id).
  await db.schema
    .createTable("sso_connections")
    .addColumn("account_id", "text", (c) => c.primaryKey().references("accounts.id").onDelete("cascade"))
    .addColumn("issuer", "text", (c) => c.notNull())
    .addColumn("client_id", "text", (c) => c.notNull())
    .addColumn("client_secret_sealed", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .execute();

  // The email domains that lead to an account's provider: the primary key makes each domain lead to one account.
  await db.schema
    .createTable("sso_domains")
    .addColumn("domain", "text", (c) => c.primaryKey())
    .addColumn("account_id", "text", (c) => c.notNull().references("sso_connections.account_id").onDelete("cascade"))
    .execute();
  await db.schema.createIndex("sso_domains_account_idx").on("sso_domains").column("account_id").execute();

  // Authorization requests in flight: found by the hash of `state`, bound to the browser by the hash of its cookie,
  // and spent once by a guarded UPDATE of `used_at`.
  await db.schema
    .createTable("sso_logins")
    .addColumn("state_hash", "text", (c) => c.primaryKey())
    .addColumn("browser_hash", "text", (c) => c.notNull())
    .addColumn("account_id", "text", (c) => c.notNull().references("accounts.id").onDelete("cascade"))
    .addColumn("code_verifier_sealed", "text", (c) => c.notNull())
    .addColumn("nonce", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("expires_at", "bigint", (c) => c.notNull())
    .addColumn("used_at", "bigint")
    .addColumn("ip", "text")
    .addColumn("user_agent", "text")
    .execute();
  await db.schema.createIndex("sso_logins_expires_idx").on("sso_logins").column("expires_at").execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ["sso_logins", "sso_domains", "sso_connections"]) await db.schema.dropTable(table).execute();
}
