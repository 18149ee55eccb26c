import type { Kysely } from "kysely";
import { sql } from "../kysely.js";

export async function up(db: Kysely<unknown>): Promise<void> {
  // Durable mail (issue 11): a message is a row written in the same transaction as the change that causes it, and a
  // sender on any instance claims and delivers it. The body carries live links, so it is sealed (AES-256-GCM under the
  // secret key) and cleared once the row is finished (sent, given up, or superseded by a newer message of its key).
  await db.schema
    .createTable("mail_queue")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("dedupe_key", "text")
    .addColumn("to_address", "text", (c) => c.notNull())
    .addColumn("body_sealed", "text")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("available_at", "bigint", (c) => c.notNull())
    .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("claimed_by", "text")
    .addColumn("claim_expires_at", "bigint")
    .addColumn("sent_at", "bigint")
    .addColumn("failed_at", "bigint")
    .addColumn("superseded_at", "bigint")
    .addColumn("last_error", "text")
    .execute();
  // Claiming reads only the unfinished rows, by when they are due: a partial index stays as small as the backlog.
  await db.schema
    .createIndex("mail_queue_due_idx")
    .on("mail_queue")
    .column("available_at")
    .where(sql.ref("sent_at"), "is", null)
    .where(sql.ref("failed_at"), "is", null)
    .where(sql.ref("superseded_at"), "is", null)
    .execute();
  await db.schema
    .createIndex("mail_queue_dedupe_idx")
    .on("mail_queue")
    .column("dedupe_key")
    .where(sql.ref("dedupe_key"), "is not", null)
    .execute();
  // Pruning finished rows by age.
  await db.schema.createIndex("mail_queue_created_idx").on("mail_queue").column("created_at").execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("mail_queue").execute();
}
