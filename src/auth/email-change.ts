import type { Kysely, Selectable } from "kysely";
import { withTx, type AppContext, type RequestInfo } from "../context.js";
import type { Database, EmailChangeTable } from "../db/schema.js";
import { isUniqueViolation } from "../db/unique-violation.js";
import { fail, LatchkeyError, ok, type Result } from "../errors.js";
import { recordEventForEveryAccount } from "../audit/events.js";
import { emailChangeConfirmMessage, emailChangeRequestedMessage, emailChangedMessage } from "../mail/messages.js";
import type { MailMessage } from "../mail/mailer.js";
import { queueMail } from "../mail/queue.js";
import { urlTo } from "../paths.js";
import { checkEmail } from "./emails.js";
import { hasFreshProof, passwordLoginFactors, reauthenticate } from "./fresh-proof.js";
import type { SignedIn } from "./sessions.js";
import { hashToken, looksLikeToken, newId, newToken } from "./tokens.js";

/**
 * Changing the email address of a login. The signed-in person asks, with a fresh proof; a link goes to the new
 * address (proof that they can read it) and a notice to the old one, with a link that stops the change. Confirming
 * switches the address in one transaction that re-checks, at that moment, that the address is still the login's and
 * the new one still free (a unique index settles two logins confirming the same address at once), and ends the
 * person's sessions elsewhere. SSO members are refused: their address is their identity provider's word.
 */

type EmailChange = Selectable<EmailChangeTable>;

const SSO_MESSAGE =
  "You sign in with single sign-on, so your email address comes from your company's identity provider and cannot be changed here. Ask your administrator to change it there.";

/** Whether the user signs in to some account through its identity provider, which names them by this address. */
async function usesSingleSignOn(db: Kysely<Database>, userId: string): Promise<boolean> {
  const row = await db
    .selectFrom("memberships")
    .select("id")
    .where("user_id", "=", userId)
    .where("sign_in_method", "=", "sso")
    .executeTakeFirst();
  return row !== undefined;
}

/** Hands a message over, as part of the change; a mail that cannot be taken undoes the change (503, nothing changed). */
async function queueOrFail(ctx: AppContext, message: MailMessage, key?: string): Promise<void> {
  try {
    await queueMail(ctx, message, key === undefined ? {} : { key });
  } catch (error) {
    throw new LatchkeyError(
      "mail_unavailable",
      "We could not send the email, so nothing was changed. Please try again in a few minutes.",
      undefined,
      {
        cause: error,
      },
    );
  }
}

export interface PendingEmailChange {
  newEmail: string;
  expiresAt: number;
}

/** The person's change of address waiting for confirmation, if any. */
export async function pendingEmailChange(ctx: Pick<AppContext, "db" | "clock">, userId: string): Promise<PendingEmailChange | null> {
  const row = await ctx.db
    .selectFrom("email_changes")
    .select(["new_email", "expires_at"])
    .where("user_id", "=", userId)
    .where("confirmed_at", "is", null)
    .where("cancelled_at", "is", null)
    .where("voided_at", "is", null)
    .where("expires_at", ">", ctx.clock.now())
    .orderBy("created_at", "desc")
    .executeTakeFirst();
  return row ? { newEmail: row.new_email, expiresAt: row.expires_at } : null;
}

/** Whether this person may change their address here at all (not for SSO members, nor in an SSO session). */
export async function emailChangeAllowed(ctx: Pick<AppContext, "db">, me: SignedIn): Promise<Result<null, "email_managed_by_sso">> {
  if (me.signInMethod === "sso" || (await usesSingleSignOn(ctx.db, me.user.id))) return fail("email_managed_by_sso", SSO_MESSAGE);
  return ok(null);
}

export type RequestEmailChangeFailure =
  "email_managed_by_sso" | "email_invalid" | "email_in_use" | "fresh_proof_required" | "invalid_credentials" | "too_many_attempts";

/**
 * Asks to change the signed-in person's address to `email`. The fresh proof is the session's (≤ 10 minutes old) or
 * the password given with the request. Checks, in this order, what costs nothing to check (SSO, the address), then
 * the proof, then counts the request against the daily limit before telling whether the address is taken, so the
 * answer "in use" cannot be asked for freely. A newer request voids the older ones, links and all.
 */
export async function requestEmailChange(
  ctx: AppContext,
  me: SignedIn,
  input: { email: string; password?: string | undefined; info: RequestInfo },
): Promise<Result<PendingEmailChange, RequestEmailChangeFailure>> {
  const allowed = await emailChangeAllowed(ctx, me);
  if (!allowed.ok) return allowed;
  const login = passwordLoginFactors(me);
  if (!login.ok) return fail("email_managed_by_sso", SSO_MESSAGE);
  const checked = checkEmail(input.email, ctx.config.limits);
  if (!checked.ok) return checked;
  const newEmail = checked.value;
  const user = await ctx.db.selectFrom("users").select("email").where("id", "=", me.user.id).executeTakeFirstOrThrow();
  if (newEmail === user.email) return fail("email_invalid", `${newEmail} is already your email address.`);

  if (input.password !== undefined && input.password !== "") {
    const proof = await reauthenticate(ctx, login.value, input.password, input.info);
    if (!proof.ok) return proof;
  } else if (!hasFreshProof(ctx, me)) {
    return fail("fresh_proof_required", "Enter your password to change your email address.");
  }

  const { limits } = ctx.config;
  const key = `email-change:user:${me.user.id}`;
  if ((await ctx.attempts.hit(key, 24 * 60 * 60)) > limits.emailChangeRequestsPerUserPerDay) {
    return fail("too_many_attempts", "You asked to change your email address too often today. Try again tomorrow.", {
      retryAfterSeconds: Math.max(1, await ctx.attempts.retryAfterSeconds(key)),
    });
  }
  const taken = await ctx.db.selectFrom("users").select("id").where("email", "=", newEmail).executeTakeFirst();
  if (taken) return fail("email_in_use", `${newEmail} is already used by another login. Choose another address.`);

  const now = ctx.clock.now();
  const token = newToken();
  const cancelToken = newToken();
  const expiresAt = now + limits.emailChangeTtlSeconds * 1000;
  const expiresInHours = Math.round(limits.emailChangeTtlSeconds / 3600);
  const id = newId();
  await ctx.db.transaction().execute(async (tx) => {
    const inTx = withTx(ctx, tx);
    // One request at a time per person on PostgreSQL (SQLite has one writer anyway): two parallel requests must not
    // both void the older ones and then both insert, leaving two live links.
    let current = tx.selectFrom("users").select("email").where("id", "=", me.user.id);
    if (ctx.dialect === "postgres") current = current.forUpdate();
    const oldEmail = (await current.executeTakeFirstOrThrow()).email;
    await tx
      .updateTable("email_changes")
      .set({ voided_at: now })
      .where("user_id", "=", me.user.id)
      .where("confirmed_at", "is", null)
      .where("cancelled_at", "is", null)
      .where("voided_at", "is", null)
      .execute();
    await tx
      .insertInto("email_changes")
      .values({
        id,
        user_id: me.user.id,
        old_email: oldEmail,
        new_email: newEmail,
        token_hash: hashToken(token),
        cancel_token_hash: hashToken(cancelToken),
        created_at: now,
        expires_at: expiresAt,
        confirmed_at: null,
        cancelled_at: null,
        voided_at: null,
        ip: input.info.ip,
        user_agent: input.info.userAgent?.slice(0, 512) ?? null,
      })
      .execute();
    await recordEventForEveryAccount(inTx, {
      userId: me.user.id,
      type: "email.change_requested",
      info: input.info,
      detail: { from: oldEmail, to: newEmail },
    });
    // Keyed per person: a newer request supersedes an older message not yet delivered (its link is void anyway).
    await queueOrFail(
      inTx,
      emailChangeConfirmMessage({
        to: newEmail,
        productName: ctx.config.productName,
        url: urlTo(ctx.config.publicUrl, "emailConfirm", { token }),
        expiresInHours,
      }),
      `email-change:${me.user.id}`,
    );
    await queueOrFail(
      inTx,
      emailChangeRequestedMessage({
        to: oldEmail,
        productName: ctx.config.productName,
        newEmail,
        expiresInHours,
        when: new Date(now),
        ip: input.info.ip,
        userAgent: input.info.userAgent,
        cancelUrl: urlTo(ctx.config.publicUrl, "emailCancel", { token: cancelToken }),
        supportUrl: urlTo(ctx.config.publicUrl, "support"),
      }),
      `email-change-notice:${me.user.id}`,
    );
  });
  return ok({ newEmail, expiresAt });
}

/** Withdraws the person's own pending change from their settings (no sign-out: it is them, signed in). */
export async function withdrawEmailChange(ctx: Pick<AppContext, "db" | "clock">, me: SignedIn, info: RequestInfo): Promise<boolean> {
  const pending = await ctx.db
    .selectFrom("email_changes")
    .select(["id", "new_email"])
    .where("user_id", "=", me.user.id)
    .where("confirmed_at", "is", null)
    .where("cancelled_at", "is", null)
    .where("voided_at", "is", null)
    .execute();
  let withdrawn = false;
  for (const row of pending) {
    const done = await ctx.db
      .updateTable("email_changes")
      .set({ cancelled_at: ctx.clock.now() })
      .where("id", "=", row.id)
      .where("confirmed_at", "is", null)
      .where("cancelled_at", "is", null)
      .executeTakeFirst();
    if (Number(done.numUpdatedRows) !== 1) continue;
    withdrawn = true;
    await recordEventForEveryAccount(ctx, {
      userId: me.user.id,
      type: "email.change_cancelled",
      info,
      detail: { to: row.new_email, by: "owner" },
    });
  }
  return withdrawn;
}

export type EmailChangeLinkFailure = "link_invalid" | "link_used" | "link_expired";
type LinkKind = "confirm" | "cancel";

async function findByLink(ctx: Pick<AppContext, "db">, kind: LinkKind, token: string): Promise<EmailChange | undefined> {
  if (!looksLikeToken(token)) return undefined;
  return ctx.db
    .selectFrom("email_changes")
    .selectAll()
    .where(kind === "confirm" ? "token_hash" : "cancel_token_hash", "=", hashToken(token))
    .executeTakeFirst();
}

/** Why a link of this change can no longer be used, if it cannot. */
function deadLink(row: EmailChange | undefined, kind: LinkKind, now: number): Result<EmailChange, EmailChangeLinkFailure> {
  if (!row) return fail("link_invalid", "This link is not valid. Check that you copied the whole link.");
  if (row.confirmed_at !== null)
    return fail(
      "link_used",
      kind === "confirm"
        ? "This address was already confirmed. Sign in with it."
        : "This change already happened and can no longer be stopped. If it was not you, tell your Account Admin at once.",
    );
  if (row.cancelled_at !== null) return fail("link_invalid", "This change of email address was cancelled, so the link no longer works.");
  if (row.voided_at !== null)
    return fail("link_invalid", "A newer change of email address was asked for, so this link no longer works. Use the newest email.");
  if (row.expires_at <= now) return fail("link_expired", "This link has expired, and the email address was not changed.");
  return ok(row);
}

/** Checks a confirm or cancel link before its page is drawn: a page is never shown for a link that names nothing live. */
export async function checkEmailChangeLink(
  ctx: Pick<AppContext, "db" | "clock">,
  kind: LinkKind,
  token: string,
): Promise<Result<{ newEmail: string }, EmailChangeLinkFailure>> {
  const found = deadLink(await findByLink(ctx, kind, token), kind, ctx.clock.now());
  return found.ok ? ok({ newEmail: found.value.new_email }) : found;
}

/** A failure decided inside a transaction after something was written: thrown to roll it all back. */
class Rollback extends Error {
  constructor(readonly failure: { ok: false; reason: ConfirmFailure; message: string }) {
    super(failure.message);
  }
}

export type ConfirmFailure = EmailChangeLinkFailure | "email_in_use" | "email_managed_by_sso";

const IN_USE = (email: string): string =>
  `${email} is now used by another login, so it cannot become yours. Ask for the change again with another address.`;

/**
 * Confirms a change from the link sent to the new address. The link is claimed by a guarded UPDATE (one winner);
 * in the same transaction the login must still have the old address and no SSO membership, and the new address must
 * still be free: checked, and on PostgreSQL settled by the unique index on users.email when two logins confirm the
 * same address at once (the loser's transaction rolls back, its link unspent). Then: the address switches, every
 * session of the person ends but the confirming browser's own (when it is the person's), sign-ins in progress end,
 * open support requests (verified through the old inbox) are cancelled, each account's log records it, and both
 * addresses are told.
 */
export async function confirmEmailChange(
  ctx: AppContext,
  token: string,
  input: { signedIn: SignedIn | null; info: RequestInfo },
): Promise<Result<{ newEmail: string; keptSession: boolean; sessionsEnded: number }, ConfirmFailure>> {
  const now = ctx.clock.now();
  const found = deadLink(await findByLink(ctx, "confirm", token), "confirm", now);
  if (!found.ok) return found;
  const change = found.value;
  const keep = input.signedIn?.user.id === change.user_id ? input.signedIn.sessionId : undefined;
  try {
    return await ctx.db.transaction().execute(async (tx) => {
      const inTx = withTx(ctx, tx);
      const claimed = await tx
        .updateTable("email_changes")
        .set({ confirmed_at: now })
        .where("id", "=", change.id)
        .where("confirmed_at", "is", null)
        .where("cancelled_at", "is", null)
        .where("voided_at", "is", null)
        .where("expires_at", ">", now)
        .executeTakeFirst();
      if (Number(claimed.numUpdatedRows) !== 1) {
        throw new Rollback(fail("link_used", "This link was already used or is no longer valid. Sign in with your email address."));
      }
      let current = tx.selectFrom("users").select("email").where("id", "=", change.user_id);
      if (ctx.dialect === "postgres") current = current.forUpdate();
      const user = await current.executeTakeFirst();
      if (user?.email !== change.old_email)
        throw new Rollback(
          fail("link_invalid", "The email address of this login changed after this link was sent, so it no longer works."),
        );
      if (await usesSingleSignOn(tx, change.user_id)) throw new Rollback(fail("email_managed_by_sso", SSO_MESSAGE));
      const taken = await tx
        .selectFrom("users")
        .select("id")
        .where("email", "=", change.new_email)
        .where("id", "!=", change.user_id)
        .executeTakeFirst();
      if (taken) throw new Rollback(fail("email_in_use", IN_USE(change.new_email)));
      const switched = await tx
        .updateTable("users")
        .set({ email: change.new_email, email_changed_at: now, updated_at: now })
        .where("id", "=", change.user_id)
        .where("email", "=", change.old_email)
        .executeTakeFirst();
      if (Number(switched.numUpdatedRows) !== 1) throw new Rollback(fail("link_invalid", "This login's email address changed meanwhile."));

      let sessions = tx.deleteFrom("sessions").where("user_id", "=", change.user_id);
      if (keep !== undefined) sessions = sessions.where("id", "!=", keep);
      const sessionsEnded = Number((await sessions.executeTakeFirst()).numDeletedRows);
      // A sign-in in progress may be waiting for a link emailed to the old address: it must not finish.
      await tx
        .updateTable("challenges")
        .set({ consumed_at: now })
        .where("user_id", "=", change.user_id)
        .where("consumed_at", "is", null)
        .execute();
      // A password reset link went to the old address: it must not set the password of a login that left that inbox.
      await tx
        .updateTable("password_resets")
        .set({ voided_at: now })
        .where("user_id", "=", change.user_id)
        .where("used_at", "is", null)
        .where("voided_at", "is", null)
        .execute();
      // A support request was verified through the old inbox, and its emails would go there (docs/decisions.md).
      const support = await tx
        .selectFrom("support_requests")
        .select("id")
        .where("user_id", "=", change.user_id)
        .where("status", "in", ["unconfirmed", "pending", "approved"])
        .execute();
      for (const request of support) {
        const cancelled = await tx
          .updateTable("support_requests")
          .set({ status: "cancelled" })
          .where("id", "=", request.id)
          .where("status", "in", ["unconfirmed", "pending", "approved"])
          .executeTakeFirst();
        if (Number(cancelled.numUpdatedRows) === 1)
          await recordEventForEveryAccount(inTx, {
            userId: change.user_id,
            type: "support.cancelled",
            info: input.info,
            detail: { requestId: request.id, reason: "email_changed" },
          });
      }
      await recordEventForEveryAccount(inTx, {
        userId: change.user_id,
        type: "email.changed",
        info: input.info,
        detail: { from: change.old_email, to: change.new_email, sessionsEnded },
      });
      for (const recipient of ["old", "new"] as const) {
        await queueOrFail(
          inTx,
          emailChangedMessage({
            to: recipient === "old" ? change.old_email : change.new_email,
            productName: ctx.config.productName,
            oldEmail: change.old_email,
            newEmail: change.new_email,
            recipient,
            when: new Date(now),
            ip: input.info.ip,
            userAgent: input.info.userAgent,
            signInUrl: urlTo(ctx.config.publicUrl, "login"),
          }),
        );
      }
      return ok({ newEmail: change.new_email, keptSession: keep !== undefined, sessionsEnded });
    });
  } catch (error) {
    if (error instanceof Rollback) return error.failure;
    // Two logins confirmed the same address at once and the other committed first: the unique index refused ours.
    if (isUniqueViolation(error)) return fail("email_in_use", IN_USE(change.new_email));
    throw error;
  }
}

/**
 * Stops a pending change from the link sent to the old address: "this was not me". The change is cancelled and,
 * since whoever asked was signed in as the person, every session of the person ends and sign-ins in progress too.
 */
export async function cancelEmailChange(
  ctx: AppContext,
  token: string,
  info: RequestInfo,
): Promise<Result<{ sessionsEnded: number }, EmailChangeLinkFailure>> {
  const now = ctx.clock.now();
  const found = deadLink(await findByLink(ctx, "cancel", token), "cancel", now);
  if (!found.ok) return found;
  const change = found.value;
  return ctx.db.transaction().execute(async (tx) => {
    const claimed = await tx
      .updateTable("email_changes")
      .set({ cancelled_at: now })
      .where("id", "=", change.id)
      .where("confirmed_at", "is", null)
      .where("cancelled_at", "is", null)
      .where("voided_at", "is", null)
      .executeTakeFirst();
    if (Number(claimed.numUpdatedRows) !== 1) {
      const again = await tx.selectFrom("email_changes").selectAll().where("id", "=", change.id).executeTakeFirst();
      const why = deadLink(again, "cancel", now);
      return why.ok ? fail("link_invalid", "This change can no longer be stopped.") : why;
    }
    const sessionsEnded = Number((await tx.deleteFrom("sessions").where("user_id", "=", change.user_id).executeTakeFirst()).numDeletedRows);
    await tx
      .updateTable("challenges")
      .set({ consumed_at: now })
      .where("user_id", "=", change.user_id)
      .where("consumed_at", "is", null)
      .execute();
    await recordEventForEveryAccount(withTx(ctx, tx), {
      userId: change.user_id,
      type: "email.change_cancelled",
      info,
      detail: { to: change.new_email, by: "old_address", sessionsEnded },
    });
    return ok({ sessionsEnded });
  });
}
