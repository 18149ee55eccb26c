import { hostname } from "node:os";
import type { Compilable, Kysely, SqlBool } from "kysely";
import type { Database } from "../db/schema.js";
import type { Dialect } from "../db/connect.js";
import { compiledOnce, type Param } from "../db/compiled-once.js";
import { sql } from "../db/kysely.js";
import type { AppContext } from "../context.js";
import type { SecretBox } from "../auth/secret-box.js";
import { newId } from "../auth/tokens.js";
import type { Mailer } from "./mailer.js";
import { mailBox, openQueuedMessage, type MailEventKind, type QueuedMail } from "./queue.js";

/** Where the sender reports failures: the server's logger (pino's signature). Never given a message body. */
export interface MailLog {
  warn(detail: object, message: string): void;
  error(detail: object, message: string): void;
}

export interface MailSenderOptions {
  /** Names this sender in the rows it claims (`claimed_by`). Default: host, process id and a random part. */
  instanceId?: string;
  /** The jitter of retry waits, in [0, 1). Tests fix it. */
  random?: () => number;
  /** Told of every message queued, sent, given up, or to be retried (metrics count them). */
  onEvent?: (kind: MailEventKind) => void;
  log?: MailLog;
}

/** What trying a set of messages came to (the CLI's own messages before it exits). */
export interface DeliveryReport {
  sent: number;
  /** Still to be delivered (by a running server): not sent, not given up, not superseded. */
  pending: number;
  /** The last error of a pending message, short. */
  lastError: string | null;
}

interface ClaimedRow {
  id: string;
  dedupe_key: string | null;
  to_address: string;
  body_sealed: string | null;
  attempts: number;
}

type Outcome = "sent" | "failed" | "skipped";

type ClaimValues = {
  instanceId: string;
  now: number;
  leaseEndsAt: number;
  batchSize: number;
};

/** The claim of up to `batchSize` due messages (of `only`, when given), each value given by `param`. */
function claimQuery(db: Kysely<Database>, dialect: Dialect, param: Param, only?: readonly string[]): Compilable<ClaimedRow> {
  const now = param<number>("now");
  let due = db
    .selectFrom("mail_queue")
    .select("id")
    .where("sent_at", "is", null)
    .where("failed_at", "is", null)
    .where("superseded_at", "is", null)
    .where("available_at", "<=", now)
    .where((eb) => eb.or([eb("claim_expires_at", "is", null), eb("claim_expires_at", "<=", now)]))
    .orderBy("available_at")
    .orderBy("id")
    .limit(param<number>("batchSize"));
  if (only !== undefined) due = due.where("id", "in", [...only]);
  // PostgreSQL: rows another sender is claiming right now are skipped, not waited for. The sub-select is evaluated
  // once, as an array: as `id IN (…)` the planner may run it again for each row it updates, and each run (locking
  // rows anew) can pick other rows, claiming far more than the batch. SQLite has one writer and runs `IN` once.
  const chosen =
    dialect === "postgres"
      ? sql<SqlBool>`${sql.ref("id")} = any(array(${due.forUpdate().skipLocked()}))`
      : sql<SqlBool>`${sql.ref("id")} in (${due})`;
  return (
    db
      .updateTable("mail_queue")
      .set((eb) => ({
        claimed_by: param<string>("instanceId"),
        claim_expires_at: param<number>("leaseEndsAt"),
        // Claimed before and not finished: its sender died mid-send. That counts as an attempt, so a message that
        // crashes its sender every time is given up in the end.
        attempts: eb
          .case()
          .when("claimed_by", "is", null)
          .then(eb.ref("attempts"))
          .else(eb("attempts", "+", 1))
          .end(),
      }))
      .where(chosen)
      // The guard again, for SQLite (and harmless on PostgreSQL): only an unclaimed (or expired) due row is taken.
      .where("sent_at", "is", null)
      .where("failed_at", "is", null)
      .where("superseded_at", "is", null)
      .where((eb) => eb.or([eb("claim_expires_at", "is", null), eb("claim_expires_at", "<=", now)]))
      .returning(["id", "dedupe_key", "to_address", "body_sealed", "attempts"])
  );
}

const claimDue = {
  sqlite: compiledOnce<ClaimValues, ClaimedRow>((db, param) => claimQuery(db, "sqlite", param)),
  postgres: compiledOnce<ClaimValues, ClaimedRow>((db, param) => claimQuery(db, "postgres", param)),
};

/** Longest `last_error` stored and logged: enough for an SMTP reply line. */
const ERROR_MAX_LENGTH = 300;

/** A delivery error as stored and logged: its message (and SMTP reply code), one line, short. Never the body. */
export function shortError(error: unknown): string {
  const code = (error as { responseCode?: unknown } | null)?.responseCode;
  const message = error instanceof Error ? error.message : String(error);
  const line = `${typeof code === "number" && !message.startsWith(String(code)) ? `${code} ` : ""}${message}`.replace(/\s+/g, " ").trim();
  return line.length > ERROR_MAX_LENGTH ? `${line.slice(0, ERROR_MAX_LENGTH - 1)}…` : line;
}

/**
 * A batch split by recipient, each part in queue order (ids sort by queue time): different people's messages are sent
 * side by side, one person's in turn, so they arrive in the order they were caused.
 */
function byRecipient(rows: ClaimedRow[]): ClaimedRow[][] {
  const groups = new Map<string, ClaimedRow[]>();
  for (const row of [...rows].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    const group = groups.get(row.to_address);
    if (group) group.push(row);
    else groups.set(row.to_address, [row]);
  }
  return [...groups.values()];
}

async function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from the mail server within ${Math.round(ms / 1000)} s`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Delivers the mail queue through the transport (SMTP or the outbox). Any number of instances run one each over the
 * same database: a message is claimed by one sender at a time (PostgreSQL: `FOR UPDATE SKIP LOCKED` in the claim's
 * sub-select; SQLite: the guarded UPDATE, one writer at a time), for a lease, so a crashed instance's claims are
 * retried by the others once the lease is over. A failure is retried with exponential backoff and jitter and given up
 * after `mailMaxAttempts`. A run goes on while messages are due; `wake()` starts one (or one more, after the current).
 */
export class MailSender {
  readonly instanceId: string;
  /** Set by `serve` to the server's logger once it exists. */
  log: MailLog | undefined;
  onEvent: ((kind: MailEventKind) => void) | undefined;
  private readonly random: () => number;
  private readonly box: SecretBox;
  private current: Promise<void> | undefined;
  private next: Promise<void> | undefined;
  /** Runs of `deliver` (the CLI's), awaited by `stop` like the woken ones. */
  private readonly directed = new Set<Promise<void>>();
  private stopped = false;
  /** A delivery failed since the last success: the next success makes the messages waiting out a backoff due at once. */
  private failedSinceSuccess = false;

  constructor(
    private readonly ctx: Pick<AppContext, "db" | "dialect" | "clock" | "config">,
    private readonly transport: Mailer,
    options: MailSenderOptions = {},
  ) {
    this.instanceId = options.instanceId ?? `${hostname()}:${process.pid}:${newId().slice(0, 8)}`;
    this.random = options.random ?? Math.random;
    this.onEvent = options.onEvent;
    this.log = options.log;
    this.box = mailBox(ctx.config);
  }

  /** Makes this the sender of `ctx`'s mail: woken after requests that queued some, and told of each message queued. */
  serve(queuedMail: QueuedMail): void {
    queuedMail.wake = () => this.wake();
    queuedMail.onQueued = () => this.onEvent?.("queued");
  }

  /**
   * Starts a run now, or one more right after the run in progress (which may have looked before the caller's
   * transaction committed). Resolves when that run is over: every message due and committed before the call has been
   * sent, given up or rescheduled. Never rejects (errors are logged).
   */
  wake(): Promise<void> {
    if (this.stopped) return this.current ?? Promise.resolve();
    if (this.current === undefined) {
      const run = this.run().finally(() => {
        if (this.current === run) this.current = undefined;
      });
      this.current = run;
      return run;
    }
    this.next ??= this.current.then(() => {
      this.next = undefined;
      return this.wake();
    });
    return this.next;
  }

  /**
   * Tries the given messages once each, now (the CLI's own, before it exits): bounded by `mailSendTimeoutSeconds`. A
   * message that fails stays queued for a running server, as does one another sender holds.
   */
  async deliver(ids: readonly string[]): Promise<DeliveryReport> {
    if (ids.length === 0) return { sent: 0, pending: 0, lastError: null };
    if (!this.stopped) {
      const run = this.run(ids);
      this.directed.add(run);
      await run.finally(() => this.directed.delete(run));
    }
    const rows = await this.ctx.db
      .selectFrom("mail_queue")
      .select(["sent_at", "failed_at", "superseded_at", "last_error"])
      .where("id", "in", [...ids])
      .execute();
    const pending = rows.filter((r) => r.sent_at === null && r.failed_at === null && r.superseded_at === null);
    return {
      sent: rows.filter((r) => r.sent_at !== null).length,
      pending: pending.length,
      lastError: pending.find((r) => r.last_error !== null)?.last_error ?? null,
    };
  }

  /** Claims no more; resolves when the sends in progress are over (each within `mailSendTimeoutSeconds`). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.next;
    await this.current;
    await Promise.all(this.directed);
  }

  /** Claims and delivers due messages (only `only`, when given) until none is left or the sender stops. */
  private async run(only?: readonly string[]): Promise<void> {
    while (!this.stopped) {
      let rows: ClaimedRow[];
      try {
        rows = await this.claim(only);
      } catch (error) {
        this.log?.error({ err: error }, "mail queue: could not claim messages (they are tried again at the next look)");
        return;
      }
      if (rows.length === 0) return;
      const outcomes = await this.deliverBatch(rows);
      const retryNow = outcomes.includes("sent") && this.failedSinceSuccess;
      if (retryNow) await this.retryWaitingNow();
      if (outcomes.includes("failed")) this.failedSinceSuccess = true;
      // A batch short of full took every message due when it was claimed. One queued since comes with a wake of its
      // own (which runs again after this run) or is found by the periodic look: another claim now would find nothing,
      // at the cost of a write (issue 10). Unless messages waiting out a backoff were just made due.
      if (rows.length < this.ctx.config.limits.mailBatchSize && !retryNow) return;
    }
  }

  /** Up to `mailBatchSize` due messages, claimed for this sender for the lease. */
  private async claim(only?: readonly string[]): Promise<ClaimedRow[]> {
    const { db, dialect, clock, config } = this.ctx;
    const now = clock.now();
    const values: ClaimValues = {
      instanceId: this.instanceId,
      now,
      leaseEndsAt: now + config.limits.mailClaimLeaseSeconds * 1000,
      batchSize: config.limits.mailBatchSize,
    };
    // Every request that queues mail ends in a claim: compiled once. A claim of given messages (the CLI's) is built as
    // usual, its list of ids being of any length.
    const query =
      only === undefined
        ? claimDue[dialect](db, values)
        : claimQuery(db, dialect, <T>(name: string) => values[name as keyof ClaimValues] as T, only).compile();
    return (await db.executeQuery(query)).rows;
  }

  /**
   * Delivers a claimed batch: different people's messages side by side, one person's in turn. While it lasts, the
   * claims are renewed every third of the lease, so the lease can be short (a crashed instance's messages are taken
   * over soon) while a slow mail server never makes a live send look abandoned.
   */
  private async deliverBatch(rows: ClaimedRow[]): Promise<Outcome[]> {
    const pending = new Set(rows.map((row) => row.id));
    const leaseMs = this.ctx.config.limits.mailClaimLeaseSeconds * 1000;
    const renewal = setInterval(() => void this.renew([...pending], leaseMs), Math.max(1, Math.floor(leaseMs / 3)));
    renewal.unref();
    try {
      const inTurn = async (own: ClaimedRow[]): Promise<Outcome[]> => {
        const outcomes: Outcome[] = [];
        for (const row of own) {
          outcomes.push(await this.deliverRow(row));
          pending.delete(row.id);
        }
        return outcomes;
      };
      return (await Promise.all(byRecipient(rows).map(inTurn))).flat();
    } finally {
      clearInterval(renewal);
    }
  }

  /** Extends this sender's claims of the messages still being delivered. */
  private async renew(ids: string[], leaseMs: number): Promise<void> {
    if (ids.length === 0) return;
    try {
      await this.ctx.db
        .updateTable("mail_queue")
        .set({ claim_expires_at: this.ctx.clock.now() + leaseMs })
        .where("id", "in", ids)
        .where("claimed_by", "=", this.instanceId)
        .where("sent_at", "is", null)
        .where("failed_at", "is", null)
        .execute();
    } catch (error) {
      this.log?.error({ err: error }, "mail queue: could not renew the claims of messages being sent");
    }
  }

  private async deliverRow(row: ClaimedRow): Promise<Outcome> {
    const { limits } = this.ctx.config;
    try {
      if (row.attempts >= limits.mailMaxAttempts) {
        await this.giveUp(row, "its sender stopped while sending it, too many times");
        return "failed";
      }
      // A newer message of the same key may have been queued since the claim: the older one must not go out.
      if (row.dedupe_key !== null && (await this.superseded(row.id))) {
        await this.release(row.id);
        return "skipped";
      }
      if (row.body_sealed === null) {
        // Cleared only when a row is finished, so this cannot be sent, now or ever: given up, never claimed again.
        await this.giveUp(row, "the message has no body");
        return "failed";
      }
      try {
        const message = openQueuedMessage(this.box, { ...row, body_sealed: row.body_sealed });
        await withTimeout(this.transport.send(message), limits.mailSendTimeoutSeconds * 1000);
      } catch (error) {
        await this.failed(row, error);
        return "failed";
      }
      await this.sent(row.id);
      return "sent";
    } catch (error) {
      // The database failed while recording the outcome: the claim expires and the message is tried again then.
      this.log?.error({ err: error, mailId: row.id }, "mail queue: could not record a delivery");
      return "skipped";
    }
  }

  private async superseded(id: string): Promise<boolean> {
    const row = await this.ctx.db.selectFrom("mail_queue").select("superseded_at").where("id", "=", id).executeTakeFirst();
    return row === undefined || row.superseded_at !== null;
  }

  private async release(id: string): Promise<void> {
    await this.ctx.db
      .updateTable("mail_queue")
      .set({ claimed_by: null, claim_expires_at: null })
      .where("id", "=", id)
      .where("claimed_by", "=", this.instanceId)
      .execute();
  }

  private async sent(id: string): Promise<void> {
    await this.ctx.db
      .updateTable("mail_queue")
      .set({ sent_at: this.ctx.clock.now(), body_sealed: null, claimed_by: null, claim_expires_at: null })
      .where("id", "=", id)
      .where("claimed_by", "=", this.instanceId)
      .execute();
    this.onEvent?.("sent");
  }

  private async failed(row: ClaimedRow, error: unknown): Promise<void> {
    const { limits } = this.ctx.config;
    const attempts = row.attempts + 1;
    const reason = shortError(error);
    if (attempts >= limits.mailMaxAttempts) {
      await this.giveUp({ ...row, attempts }, reason);
      return;
    }
    const waitMs = this.retryWaitMs(attempts);
    await this.ctx.db
      .updateTable("mail_queue")
      .set({
        attempts,
        available_at: this.ctx.clock.now() + waitMs,
        claimed_by: null,
        claim_expires_at: null,
        last_error: reason,
      })
      .where("id", "=", row.id)
      .where("claimed_by", "=", this.instanceId)
      .execute();
    this.onEvent?.("retried");
    this.log?.warn(
      { mailId: row.id, key: row.dedupe_key, attempts, retryInSeconds: Math.round(waitMs / 1000), error: reason },
      "mail delivery failed; it is tried again",
    );
  }

  private async giveUp(row: ClaimedRow, reason: string): Promise<void> {
    await this.ctx.db
      .updateTable("mail_queue")
      .set({
        attempts: row.attempts,
        failed_at: this.ctx.clock.now(),
        body_sealed: null,
        claimed_by: null,
        claim_expires_at: null,
        last_error: reason,
      })
      .where("id", "=", row.id)
      .where("claimed_by", "=", this.instanceId)
      .execute();
    this.onEvent?.("failed");
    this.log?.error({ mailId: row.id, key: row.dedupe_key, attempts: row.attempts, error: reason }, "mail delivery given up");
  }

  /** The wait after the `attempts`-th failure: doubling from the base, capped, with jitter (half to all of it). */
  retryWaitMs(attempts: number): number {
    const { mailRetryBaseSeconds, mailRetryMaxSeconds } = this.ctx.config.limits;
    const cap = Math.min(mailRetryMaxSeconds * 1000, mailRetryBaseSeconds * 1000 * 2 ** Math.min(attempts - 1, 30));
    return Math.round(cap / 2 + (this.random() * cap) / 2);
  }

  /**
   * Delivery works again after failures (the SMTP server is back): messages waiting out a backoff are made due now
   * instead of at their next retry, which may be minutes away — a sign-in link must not expire while it waits.
   */
  private async retryWaitingNow(): Promise<void> {
    this.failedSinceSuccess = false;
    const now = this.ctx.clock.now();
    try {
      await this.ctx.db
        .updateTable("mail_queue")
        .set({ available_at: now })
        .where("sent_at", "is", null)
        .where("failed_at", "is", null)
        .where("superseded_at", "is", null)
        .where("available_at", ">", now)
        .where("attempts", ">", 0)
        .where("claimed_by", "is", null)
        .execute();
    } catch (error) {
      this.log?.error({ err: error }, "mail queue: could not make the waiting messages due");
    }
  }
}
