import { randomBytes } from "node:crypto";
import type { Expression, ExpressionBuilder, Kysely, SqlBool } from "kysely";
import type { AppContext } from "../context.js";
import type { Config } from "../config.js";
import type { Database } from "../db/schema.js";
import { createSecretBox, type SecretBox } from "../auth/secret-box.js";
import type { MailMessage } from "./mailer.js";

export interface QueueMailOptions {
  /**
   * Messages that replace one another (e.g. `challenge:<id>` for sign-in links): a newer message with the same key
   * supersedes an older one not yet delivered, so a person is never sent a link that is already void.
   */
  key?: string;
}

/** What happens to a message, for counting (metrics): handed over, delivered, given up, or to be tried again. */
export type { MailEventKind } from "../observability/metrics.js";

/**
 * Word, within this process, that mail was queued through a context. The server compares `queued` before and after a
 * request and wakes the sender after the answer (the transaction has committed by then); the CLI keeps the `ids` of
 * its own messages to try them before it exits. The sender of the process sets `wake`.
 */
export class QueuedMail {
  /** Messages queued through this context so far (including ones whose transaction later rolled back). */
  queued = 0;
  /** Ids of the messages queued, kept only when set to an array (the CLI): a server never grows it. */
  ids: string[] | undefined;
  /** Starts a delivery run; resolves when it is over. Set by the sender; without one, mail waits for another instance. */
  wake: () => Promise<void> = async () => undefined;
  /** Told of each message queued (metrics count them). */
  onQueued: (() => void) | undefined;

  noteQueued(id: string): void {
    this.queued += 1;
    this.ids?.push(id);
    this.onQueued?.();
  }
}

let sequence = 0;

/**
 * A queue row's id: 128 bits of hex, like every id, that sort in the order the messages were queued — the time in ms,
 * a counter of this process, then randomness — so the sender delivers a person's messages in the order they were
 * caused (an "auth app turned on" notice before the "turned off" one), even within one millisecond.
 */
function queueId(now: number): string {
  sequence = (sequence + 1) % 0x10000;
  return `${Math.max(0, Math.floor(now)).toString(16).padStart(12, "0").slice(-12)}${sequence.toString(16).padStart(4, "0")}${randomBytes(8).toString("hex")}`;
}

/** The body of a message as it is sealed in its row. */
interface SealedBody {
  subject: string;
  text: string;
  html: string;
}

/** Seals queued bodies: they carry live sign-in links, and the database otherwise holds only hashes of tokens. */
export function mailBox(config: Pick<Config, "secretKey" | "previousSecretKeys">): SecretBox {
  return createSecretBox(config.secretKey, config.previousSecretKeys, "mail-queue");
}

/** The message of a claimed row, opened (bound to the row's id, so a body copied onto another row does not open). */
export function openQueuedMessage(box: SecretBox, row: { id: string; to_address: string; body_sealed: string }): MailMessage {
  const body = JSON.parse(box.open(row.body_sealed, row.id)) as SealedBody;
  return { to: row.to_address, subject: body.subject, text: body.text, html: body.html };
}

/**
 * Hands a message to Latchkey's mail: a row of the mail queue, delivered by a sender (src/mail/sender.ts) right after
 * the request on this instance, or by any instance's next look. Call it with the same `ctx` (e.g. `withTx(ctx, tx)`)
 * as the change that causes the message, so the two commit (or roll back) together. With a `key`, older unsent
 * messages of the same key are superseded: they are never delivered.
 */
export async function queueMail(
  ctx: Pick<AppContext, "db" | "clock" | "config" | "queuedMail">,
  message: MailMessage,
  options: QueueMailOptions = {},
): Promise<void> {
  const now = ctx.clock.now();
  const id = queueId(now);
  const key = options.key ?? null;
  if (key !== null) {
    await ctx.db
      .updateTable("mail_queue")
      .set({ superseded_at: now, body_sealed: null })
      .where("dedupe_key", "=", key)
      .where("sent_at", "is", null)
      .where("failed_at", "is", null)
      .where("superseded_at", "is", null)
      .execute();
  }
  const body: SealedBody = { subject: message.subject, text: message.text, html: message.html };
  await ctx.db
    .insertInto("mail_queue")
    .values({
      id,
      dedupe_key: key,
      to_address: message.to,
      body_sealed: mailBox(ctx.config).seal(JSON.stringify(body), id),
      created_at: now,
      available_at: now,
      claimed_by: null,
      claim_expires_at: null,
      sent_at: null,
      failed_at: null,
      superseded_at: null,
      last_error: null,
    })
    .execute();
  ctx.queuedMail.noteQueued(id);
}

/**
 * Where the newest message of a key stands: `pending` (not tried yet, or being sent), `failing` (attempts failed,
 * retries go on), `sent`, `failed` (given up), or null when there is none (or it was superseded without a successor).
 */
export type MailDelivery = "pending" | "failing" | "sent" | "failed";

export async function mailDelivery(ctx: Pick<AppContext, "db">, key: string): Promise<MailDelivery | null> {
  const row = await ctx.db
    .selectFrom("mail_queue")
    .select(["attempts", "sent_at", "failed_at"])
    .where("dedupe_key", "=", key)
    .where("superseded_at", "is", null)
    .orderBy("created_at", "desc")
    .limit(1)
    .executeTakeFirst();
  if (!row) return null;
  if (row.sent_at !== null) return "sent";
  if (row.failed_at !== null) return "failed";
  return row.attempts > 0 ? "failing" : "pending";
}

/**
 * Deletes finished rows (sent, given up, superseded) created before `beforeMs` — at most `limit` of them when given
 * (housekeeping's batches); rows still to be delivered stay, however old. For housekeeping, with
 * `now - mailQueueRetentionSeconds`. Returns how many were deleted.
 */
export async function pruneMailQueue(db: Kysely<Database>, beforeMs: number, limit?: number): Promise<number> {
  const finished = (eb: ExpressionBuilder<Database, "mail_queue">): Expression<SqlBool> =>
    eb.and([
      eb("created_at", "<", beforeMs),
      eb.or([eb("sent_at", "is not", null), eb("failed_at", "is not", null), eb("superseded_at", "is not", null)]),
    ]);
  let query = db.deleteFrom("mail_queue").where(finished);
  if (limit !== undefined) query = query.where("id", "in", db.selectFrom("mail_queue").select("id").where(finished).limit(limit));
  const result = await query.executeTakeFirst();
  return Number(result.numDeletedRows);
}
