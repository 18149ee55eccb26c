import type { Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  // How a session signed in, for the OpenID Provider's `amr` and `acr`: the proof that finished it (email_link,
  // auth_app, recovery_code, sso) and, after SSO, the upstream provider's `amr` values (JSON array). Null in sessions
  // from before this migration: read as the weakest proof of their sign-in method.
  await db.schema.alterTable("sessions").addColumn("sign_in_proof", "text").execute();
  await db.schema.alterTable("sessions").addColumn("upstream_amr", "text").execute();

  // oidc-provider's state (sessions, interactions, grants, codes, tokens, replay detection), one row per model
  // instance. The payload is the library's JSON, kept as text; the columns beside it are the look-ups the library
  // asks for (by grant, by session uid, by device user code) and the times the adapter filters on.
  await db.schema
    .createTable("oidc_models")
    .addColumn("model", "text", (c) => c.notNull())
    .addColumn("id", "text", (c) => c.notNull())
    .addColumn("payload", "text", (c) => c.notNull())
    .addColumn("grant_id", "text")
    .addColumn("user_code", "text")
    .addColumn("uid", "text")
    .addColumn("expires_at", "bigint")
    .addColumn("consumed_at", "bigint")
    .addPrimaryKeyConstraint("oidc_models_pk", ["model", "id"])
    .execute();
  await db.schema.createIndex("oidc_models_grant_idx").on("oidc_models").column("grant_id").execute();
  await db.schema.createIndex("oidc_models_uid_idx").on("oidc_models").column("uid").execute();
  await db.schema.createIndex("oidc_models_user_code_idx").on("oidc_models").column("user_code").execute();
  await db.schema.createIndex("oidc_models_expires_idx").on("oidc_models").column("expires_at").execute();

  // The provider's signing keys: the private JWK sealed with the secret key (AAD = the kid). The newest key whose
  // `signs_from` has come signs; the others stay published in the JWKS until what they signed has expired.
  await db.schema
    .createTable("oidc_signing_keys")
    .addColumn("kid", "text", (c) => c.primaryKey())
    .addColumn("alg", "text", (c) => c.notNull())
    .addColumn("private_jwk_sealed", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("signs_from", "bigint", (c) => c.notNull())
    .execute();

  // Relying parties registered by the operator (`latchkey client create`). The secret is stored as its SHA-256 only;
  // public clients have none. URI lists are JSON arrays.
  await db.schema
    .createTable("oidc_clients")
    .addColumn("client_id", "text", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("secret_hash", "text")
    .addColumn("redirect_uris", "text", (c) => c.notNull())
    .addColumn("post_logout_redirect_uris", "text", (c) => c.notNull())
    .addColumn("backchannel_logout_uri", "text")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .execute();

  // Which Latchkey session (and account) each grant to a client was made from. No foreign keys on purpose: the row
  // must outlive the session, the membership and even the user, so the sweep can still tell the client they ended.
  await db.schema
    .createTable("oidc_grants")
    .addColumn("grant_id", "text", (c) => c.primaryKey())
    .addColumn("session_id", "text", (c) => c.notNull())
    .addColumn("user_id", "text", (c) => c.notNull())
    .addColumn("account_id", "text", (c) => c.notNull())
    .addColumn("client_id", "text", (c) => c.notNull())
    .addColumn("sid", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("ended_at", "bigint")
    .execute();
  await db.schema.createIndex("oidc_grants_session_idx").on("oidc_grants").column("session_id").execute();
  await db.schema.createIndex("oidc_grants_user_idx").on("oidc_grants").column("user_id").execute();
  await db.schema.createIndex("oidc_grants_client_idx").on("oidc_grants").column("client_id").execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ["oidc_grants", "oidc_clients", "oidc_signing_keys", "oidc_models"]) await db.schema.dropTable(table).execute();
  await db.schema.alterTable("sessions").dropColumn("upstream_amr").execute();
  await db.schema.alterTable("sessions").dropColumn("sign_in_proof").execute();
}
