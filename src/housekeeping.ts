import { hostname } from "node:os";
import type { Expression, ExpressionBuilder, Kysely, SqlBool } from "kysely";
import { sql } from "./db/kysely.js";
import type { AppContext } from "./context.js";
import type { Database } from "./db/schema.js";
import { leaseState, releaseLease, renewLease, takeLease, type LeaseState } from "./db/lease.js";
import { checkpointWal, type WalCheckpoint } from "./db/wal.js";
import { newId } from "./auth/tokens.js";
import { pruneMailQueue } from "./mail/queue.js";

/**
 * Housekeeping: deletes the rows nobody can use any more, so tables (and the indexes of the session check) stay the
 * size of what is live. Every table below is already read with its expiry checked — an expired row is refused
 * wherever it is looked up — so this never changes what anyone can do; it only forgets. What "expired" means for each
 * table, and why, is written beside its rule (and in docs/deployment.md).
 *
 * One run at a time across every instance: a run holds the `housekeeping` lease (src/db/lease.ts), renewed after every
 * batch; a holder that dies is taken over once the lease expires. Rows go in batches of `housekeepingBatchSize`, each
 * its own short statement, so nothing holds a table (or SQLite's one writer lock) for long. On SQLite each run ends
 * with a WAL checkpoint (src/db/wal.ts).
 */

/** The lease's name in `leases`. */
export const HOUSEKEEPING_LEASE = "housekeeping";

type Table = keyof Database & string;
type Condition<T extends Table> = (eb: ExpressionBuilder<Database, T>) => Expression<SqlBool>;

/** One kind of expired row. `batch` deletes at most `limit` of them and returns how many it deleted. */
interface Rule {
  table: Table;
  /** Why nothing is deleted from this table this run (e.g. audit events kept forever), instead of a batch. */
  kept?: string;
  batch(limit: number): Promise<number>;
}

/**
 * Deletes at most `limit` rows of `table` matching `condition`. Neither dialect has a portable `DELETE … LIMIT`, so the
 * keys are chosen by a limited subquery; the condition is checked again on the rows themselves, so a row that came
 * back to life between the two (a session touched, a counter restarted) is left alone.
 */
async function deleteBatch<T extends Table>(
  db: Kysely<Database>,
  table: T,
  key: string | [string, string],
  condition: Condition<T>,
  limit: number,
): Promise<number> {
  // Kysely cannot type a query over a table chosen by a type parameter; the rules themselves are typed (Condition<T>).
  const untyped = db as unknown as Kysely<Record<string, Record<string, unknown>>>;
  const cond = condition as unknown as (eb: ExpressionBuilder<Record<string, Record<string, unknown>>, string>) => Expression<SqlBool>;
  const name: string = table;
  const keys = untyped
    .selectFrom(name)
    .select(typeof key === "string" ? [key] : key)
    .where(cond)
    .limit(limit);
  const result = await untyped
    .deleteFrom(name)
    // A row value `(a, b) IN (SELECT a, b …)` for a two-column key: SQLite (3.15+) and PostgreSQL both take it.
    .where((eb) =>
      typeof key === "string" ? eb(eb.ref(key), "in", keys) : sql<SqlBool>`(${sql.ref(key[0])}, ${sql.ref(key[1])}) in (${keys})`,
    )
    .where(cond)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** The rules, in the order they run. `now` is the run's start: one moment for the whole run. */
function rules(ctx: Pick<AppContext, "db" | "config">, now: number): Rule[] {
  const { db, config } = ctx;
  const { limits } = config;
  const graceMs = limits.housekeepingGraceSeconds * 1000;
  const rule = <T extends Table>(table: T, key: string | [string, string], condition: Condition<T>): Rule => ({
    table,
    batch: (limit) => deleteBatch(db, table, key, condition, limit),
  });
  const auditDays = config.auditRetentionDays;
  return [
    // Sessions: past their absolute end or idle for the idle timeout — exactly what the session check refuses. Kept
    // while an OpenID Provider grant made from the session is still in `oidc_grants`: that row is the logout sweep's
    // queue (src/oidc/logout.ts), and the sweep deletes it when it claims the grant and tells the client. Until then
    // the session stays, refused but on record, so no application's back-channel logout is lost or raced.
    rule("sessions", "id", (eb) =>
      eb.and([
        eb.or([eb("expires_at", "<=", now), eb("last_seen_at", "<=", now - limits.sessionIdleTimeoutSeconds * 1000)]),
        eb.not(
          eb.exists(
            eb
              .selectFrom("oidc_grants")
              .select(sql<number>`1`.as("one"))
              .whereRef("oidc_grants.session_id", "=", "sessions.id"),
          ),
        ),
      ]),
    ),
    // Email links: a day (the grace) after they expired, used or not; until then an old link still says "expired".
    rule("email_links", "id", (eb) => eb("expires_at", "<=", now - graceMs)),
    // Sign-ins in progress (the password step's challenge): a day after they expired, once their links are gone (a
    // link can outlive its challenge by minutes and keeps its own grace; the foreign key would otherwise take it).
    rule("challenges", "id", (eb) =>
      eb.and([
        eb("expires_at", "<=", now - graceMs),
        eb.not(
          eb.exists(
            eb
              .selectFrom("email_links")
              .select(sql<number>`1`.as("one"))
              .whereRef("email_links.challenge_id", "=", "challenges.id"),
          ),
        ),
      ]),
    ),
    // Attempt counters (the database store; Redis expires its own): a counter whose window ended reads as zero
    // everywhere and the next hit starts a new one, so it is deleted as soon as the window ends.
    rule("attempt_counters", "key", (eb) => eb("reset_at", "<=", now)),
    // Invitations, open, accepted or revoked: a month after they expired. Until then Team Members lists an expired
    // one with Resend, and its link says "expired" or "already accepted".
    rule("invitations", "id", (eb) => eb("expires_at", "<=", now - limits.housekeepingInvitationKeepSeconds * 1000)),
    // First-run setup links: a day after they expired.
    rule("setup_tokens", "id", (eb) => eb("expires_at", "<=", now - graceMs)),
    // Single sign-ons started at the identity provider: a day after they expired ("took too long" until then).
    rule("sso_logins", "state_hash", (eb) => eb("expires_at", "<=", now - graceMs)),
    // Unfinished auth-app setups: as soon as they expire. They hold a sealed TOTP key, and an expired setup reads as
    // "not started" whether or not its row exists.
    rule("totp_setups", "user_id", (eb) => eb("expires_at", "<=", now)),
    // Recovery codes waiting to be shown or downloaded: as soon as they expire (they are sealed codes; once expired
    // only their count is ever shown). The codes themselves (`recovery_codes`) live with the user's batch.
    rule("recovery_code_reveals", "user_id", (eb) => eb("expires_at", "<=", now)),
    // Support requests never confirmed from the inbox: a day after the confirmation link expired. Confirmed requests
    // (pending, approved, denied, cancelled, completed) have no expiry: they are the operator's record.
    rule("support_requests", "id", (eb) => eb.and([eb("status", "=", "unconfirmed"), eb("confirm_expires_at", "<=", now - graceMs)])),
    // Email address changes: a day after their links expired, whatever became of them (confirmed, cancelled, voided);
    // until then both links (confirm, cancel) still say why they no longer work. The change itself stays in the audit
    // log and in users.email_changed_at. (A small table: requests are limited per user and day, so no index.)
    rule("email_changes", "id", (eb) => eb("expires_at", "<=", now - graceMs)),
    // Password reset links: a day after they expired, whatever became of them (used, voided); until then an old link
    // still says "expired" or "used" rather than "not valid". The reset itself stays in the audit log.
    rule("password_resets", "id", (eb) => eb("expires_at", "<=", now - graceMs)),
    // The OpenID Provider's state (codes, tokens, interactions, sessions, grants): as soon as it expires; the adapter
    // already ignores expired rows. (A grant's logout needs no expired row: the sweep finds an expired grant as gone.)
    rule("oidc_models", ["model", "id"], (eb) => eb("expires_at", "<=", now)),
    // The mail queue: rows finished (sent, given up, superseded) and older than `mailQueueRetentionSeconds` (a week):
    // until then an operator can see what was sent when. Rows still to be delivered stay, however old.
    { table: "mail_queue", batch: (limit) => pruneMailQueue(db, now - limits.mailQueueRetentionSeconds * 1000, limit) },
    // Audit events: kept forever unless LATCHKEY_AUDIT_RETENTION_DAYS is set; then deleted once that many days old.
    auditDays === undefined
      ? { table: "audit_events", kept: "kept forever (LATCHKEY_AUDIT_RETENTION_DAYS is unset)", batch: async () => 0 }
      : rule("audit_events", "id", (eb) => eb("created_at", "<=", now - auditDays * 24 * 60 * 60 * 1000)),
  ];
}

export interface TableResult {
  table: Table;
  deleted: number;
  /** Set when the table was left alone on purpose (see `Rule.kept`). */
  kept?: string;
}

export type HousekeepingReport =
  | {
      ran: true;
      tables: TableResult[];
      /** On SQLite, the run's WAL checkpoint; null on PostgreSQL, or when the run stopped early. */
      checkpoint: WalCheckpoint | null;
      /** The run ended before the last table: shutdown asked it to, or its lease was lost (it took too long). */
      stopped?: "shutdown" | "lease_lost";
    }
  | {
      ran: false;
      /** The lease as found: held by another run, or taken by one that started less than `minGapMs` ago. */
      lease: LeaseState | undefined;
    };

export interface HousekeepingOptions {
  /** Skip the run when another one started less than this long ago anywhere (0: run unless one is running now). */
  minGapMs?: number;
  /** Aborted when the server shuts down: the run stops after the batch in progress. */
  signal?: AbortSignal;
  /** After each full batch (`done: false`) and when a table is finished or left alone (`done: true`, as in the report). */
  onProgress?: (progress: TableResult & { done: boolean }) => void;
}

/** One housekeeping run, if the lease can be had. */
export async function runHousekeeping(ctx: AppContext, options: HousekeepingOptions = {}): Promise<HousekeepingReport> {
  const { limits } = ctx.config;
  const leaseMs = limits.housekeepingLeaseSeconds * 1000;
  // Unique per run, and readable in the CLI's "held by" message.
  const holder = `${hostname()} pid ${process.pid} run ${newId().slice(0, 8)}`;
  const lease = { name: HOUSEKEEPING_LEASE, holder };
  const startedAt = ctx.clock.now();
  if (!(await takeLease(ctx.db, { ...lease, now: startedAt, durationMs: leaseMs, minGapMs: options.minGapMs ?? 0 }))) {
    return { ran: false, lease: await leaseState(ctx.db, HOUSEKEEPING_LEASE) };
  }
  const tables: TableResult[] = [];
  let stopped: "shutdown" | "lease_lost" | undefined;
  let checkpoint: WalCheckpoint | null = null;
  try {
    run: for (const rule of rules(ctx, startedAt)) {
      if (rule.kept !== undefined) {
        tables.push({ table: rule.table, deleted: 0, kept: rule.kept });
        options.onProgress?.({ table: rule.table, deleted: 0, kept: rule.kept, done: true });
        continue;
      }
      let deleted = 0;
      for (;;) {
        if (options.signal?.aborted) {
          stopped = "shutdown";
          break run;
        }
        const n = await rule.batch(limits.housekeepingBatchSize);
        deleted += n;
        if (n < limits.housekeepingBatchSize) break;
        options.onProgress?.({ table: rule.table, deleted, done: false });
        if (!(await renewLease(ctx.db, { ...lease, now: ctx.clock.now(), durationMs: leaseMs }))) {
          stopped = "lease_lost";
          break run;
        }
      }
      tables.push({ table: rule.table, deleted });
      options.onProgress?.({ table: rule.table, deleted, done: true });
    }
  } finally {
    // If the database failed under the run, this may fail too: the lease then simply expires.
    await releaseLease(ctx.db, { ...lease, now: ctx.clock.now() }).catch(() => undefined);
  }
  // After the release, whose write would otherwise be the first frame of a fresh WAL. Checkpoints of several
  // connections at once are SQLite's to order; the lease is about the deletes.
  if (stopped === undefined && ctx.dialect === "sqlite") checkpoint = await checkpointWal(ctx.db);
  return stopped === undefined ? { ran: true, tables, checkpoint } : { ran: true, tables, checkpoint, stopped };
}

/** Rows deleted by a run, over all tables. */
export function totalDeleted(report: HousekeepingReport): number {
  return report.ran ? report.tables.reduce((sum, t) => sum + t.deleted, 0) : 0;
}
