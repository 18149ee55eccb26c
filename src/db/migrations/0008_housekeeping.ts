import type { Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  // Leases: a named right to do one thing at a time across instances (housekeeping). Taken and renewed by guarded
  // statements on this row (src/db/lease.ts); a holder that dies loses it when `expires_at` passes.
  await db.schema
    .createTable("leases")
    .addColumn("name", "text", (c) => c.primaryKey())
    .addColumn("holder", "text", (c) => c.notNull())
    .addColumn("taken_at", "bigint", (c) => c.notNull())
    .addColumn("expires_at", "bigint", (c) => c.notNull())
    .execute();

  // What housekeeping deletes by, so each batch finds its rows through an index instead of scanning the table.
  // (oidc_models and sso_logins have theirs already; sessions are also found by last_seen_at: the idle timeout.)
  const indexes: Array<[name: string, table: string, column: string]> = [
    ["sessions_expires_idx", "sessions", "expires_at"],
    ["sessions_last_seen_idx", "sessions", "last_seen_at"],
    ["challenges_expires_idx", "challenges", "expires_at"],
    ["email_links_expires_idx", "email_links", "expires_at"],
    ["attempt_counters_reset_idx", "attempt_counters", "reset_at"],
    ["invitations_expires_idx", "invitations", "expires_at"],
    ["audit_events_time_idx", "audit_events", "created_at"],
  ];
  for (const [name, table, column] of indexes) await db.schema.createIndex(name).on(table).column(column).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const name of [
    "audit_events_time_idx",
    "invitations_expires_idx",
    "attempt_counters_reset_idx",
    "email_links_expires_idx",
    "challenges_expires_idx",
    "sessions_last_seen_idx",
    "sessions_expires_idx",
  ])
    await db.schema.dropIndex(name).execute();
  await db.schema.dropTable("leases").execute();
}
