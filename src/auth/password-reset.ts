import { hasPasswordMembership } from "./sign-in.js";
import { withTx, type AppContext, type RequestInfo } from "../context.js";
import type { TwoFactorMethod } from "../db/schema.js";
import { fail, ok, type Result } from "../errors.js";
import { recordEvent, recordEventForEveryAccount } from "../audit/events.js";
import { notifyUser } from "../audit/notices.js";
import { passwordResetMessage, passwordResetSsoMessage } from "../mail/messages.js";
import { queueMail } from "../mail/queue.js";
import { urlTo } from "../paths.js";
import { afterWrongCode, claimCodeAttempt, clearCodeFailures, codeEntryLockedFor } from "./code-limits.js";
import { checkEmail } from "./emails.js";
import { replacePassword } from "./password-change.js";
import { checkNewPassword, hashPassword, type PasswordProblem } from "./passwords.js";
import { remainingRecoveryCodes } from "./recovery-codes.js";
import { parseSecondFactorCode, spendSecondFactorCode, wrongCodeMessage, type CodeKind } from "./second-factor.js";
import { emailKey } from "./sign-in.js";
import { hashToken, looksLikeToken, newId, newToken } from "./tokens.js";

/**
 * "Forgot your password?": a link to the login's inbox, valid `passwordResetTtlSeconds`, once, in any browser. The
 * link proves the inbox and nothing more, so it never signs anyone in and never stands in for the second factor: an
 * auth-app user enters a code from the app (or a recovery code) on the same form before the new password is set, and
 * everyone signs in afterwards as usual. Why: docs/decisions.md, "Forgot password".
 */

const requestKey = {
  email: (email: string): string => `reset:email:${email}`,
  ip: (ip: string): string => `reset:ip:${ip}`,
};

/** Messages that replace one another: a newer reset email supersedes an older one not yet delivered. */
const mailKey = (userId: string): string => `password-reset:${userId}`;

export type ResetRequestFailure = "email_invalid" | "too_many_attempts";

/**
 * A person asks for a reset link. The answer never says whether the address has a login, not even by its timing:
 * this checks only what every request gets alike (the address's form, the per-address and per-IP throttles, counted
 * for unknown addresses like known ones) and hands back the rest as `afterAnswer` — the look-up and, for a login, the
 * link, the audit events and the email — for the caller to run once the answer has gone out (as support requests).
 */
export async function requestPasswordReset(
  ctx: AppContext,
  input: { email: string; info: RequestInfo },
): Promise<Result<{ afterAnswer: () => Promise<void> }, ResetRequestFailure>> {
  const email = checkEmail(input.email, ctx.config.limits);
  if (!email.ok) return email;
  const { limits } = ctx.config;
  const window = limits.passwordResetRequestWindowSeconds;
  const fromIp = input.info.ip ? await ctx.attempts.hit(requestKey.ip(input.info.ip), window) : 0;
  const forEmail = await ctx.attempts.hit(requestKey.email(email.value), window);
  if (fromIp > limits.passwordResetRequestsPerIp || forEmail > limits.passwordResetRequestsPerEmail) {
    const byIp = fromIp > limits.passwordResetRequestsPerIp;
    const key = byIp ? requestKey.ip(input.info.ip ?? "") : requestKey.email(email.value);
    const retryAfterSeconds = Math.max(1, await ctx.attempts.retryAfterSeconds(key));
    const minutes = Math.ceil(retryAfterSeconds / 60);
    return fail(
      "too_many_attempts",
      byIp
        ? `Too many password reset requests from your network. Try again in ${minutes} minutes.`
        : `Too many password reset requests for this address. Check your inbox (and spam folder) for the earlier email, or try again in ${minutes} minutes.`,
      { retryAfterSeconds },
    );
  }
  return ok({ afterAnswer: () => sendResetEmail(ctx, { email: email.value, info: input.info }) });
}

/**
 * The part of a request that differs between addresses: run after the answer. A password login gets a new link (older
 * ones void); a person who signs in only through single sign-on is told to use it; an unknown address gets nothing.
 */
async function sendResetEmail(ctx: AppContext, input: { email: string; info: RequestInfo }): Promise<void> {
  const user = await ctx.db
    .selectFrom("users")
    .select((eb) => ["users.id", "users.email", "users.password_hash", "users.two_factor_method", hasPasswordMembership(eb)])
    .where("users.email", "=", input.email)
    .executeTakeFirst();
  if (!user) return;
  if (user.password_hash === null || !user.hasPasswordMembership) {
    const ssoAccounts = await ctx.db
      .selectFrom("memberships")
      .innerJoin("accounts", "accounts.id", "memberships.account_id")
      .select("accounts.name")
      .where("memberships.user_id", "=", user.id)
      .where("memberships.sign_in_method", "=", "sso")
      .orderBy("accounts.name")
      .execute();
    if (ssoAccounts.length === 0) return;
    await queueMail(
      ctx,
      passwordResetSsoMessage({
        to: user.email,
        productName: ctx.config.productName,
        accountNames: ssoAccounts.map((a) => a.name),
        ssoUrl: urlTo(ctx.config.publicUrl, "loginSso"),
      }),
      { key: mailKey(user.id) },
    );
    await recordEventForEveryAccount(ctx, { type: "password.reset_requested", userId: user.id, info: input.info, detail: { sso: true } });
    return;
  }
  const { limits } = ctx.config;
  const now = ctx.clock.now();
  const token = newToken();
  const id = newId();
  await ctx.db.transaction().execute(async (tx) => {
    const inTx = withTx(ctx, tx);
    // A newer request voids the older links: only the newest email works.
    await tx
      .updateTable("password_resets")
      .set({ voided_at: now })
      .where("user_id", "=", user.id)
      .where("used_at", "is", null)
      .where("voided_at", "is", null)
      .execute();
    await tx
      .insertInto("password_resets")
      .values({
        id,
        user_id: user.id,
        token_hash: hashToken(token),
        created_at: now,
        expires_at: now + limits.passwordResetTtlSeconds * 1000,
        used_at: null,
        voided_at: null,
        ip: input.info.ip,
        user_agent: input.info.userAgent?.slice(0, 512) ?? null,
      })
      .execute();
    await recordEventForEveryAccount(inTx, {
      type: "password.reset_requested",
      userId: user.id,
      info: input.info,
      detail: { resetId: id },
    });
    await queueMail(
      inTx,
      passwordResetMessage({
        to: user.email,
        productName: ctx.config.productName,
        url: urlTo(ctx.config.publicUrl, "passwordReset", { token }),
        expiresInMinutes: Math.round(limits.passwordResetTtlSeconds / 60),
        secondFactor: user.two_factor_method,
        ip: input.info.ip,
        userAgent: input.info.userAgent,
      }),
      { key: mailKey(user.id) },
    );
  });
}

export type ResetLinkFailure = "link_invalid" | "link_expired" | "link_used";

const LINK_INVALID = "This password reset link is not valid. Check that you copied the whole link, or ask for a new one.";

interface LiveReset {
  id: string;
  userId: string;
  email: string;
  twoFactorMethod: TwoFactorMethod;
}

/** The reset a link names, if it can still be used; otherwise why not, in words a person can act on. */
async function findReset(ctx: AppContext, token: string): Promise<Result<LiveReset, ResetLinkFailure>> {
  if (!looksLikeToken(token)) return fail("link_invalid", LINK_INVALID);
  const row = await ctx.db
    .selectFrom("password_resets")
    .innerJoin("users", "users.id", "password_resets.user_id")
    .select((eb) => [
      "password_resets.id",
      "password_resets.user_id",
      "password_resets.expires_at",
      "password_resets.used_at",
      "password_resets.voided_at",
      "users.email",
      "users.password_hash",
      "users.two_factor_method",
      hasPasswordMembership(eb),
    ])
    .where("password_resets.token_hash", "=", hashToken(token))
    .executeTakeFirst();
  if (!row) return fail("link_invalid", LINK_INVALID);
  if (row.used_at !== null)
    return fail(
      "link_used",
      "This password reset link was already used: each link works once. Sign in with your new password, or ask for a new link.",
    );
  if (row.voided_at !== null)
    return fail(
      "link_invalid",
      "This password reset link no longer works: a newer one was sent, the password was changed, or too many wrong codes were entered with it. Use the newest email, or ask for a new link.",
    );
  if (row.expires_at <= ctx.clock.now())
    return fail(
      "link_expired",
      `This password reset link has expired: links work for ${Math.round(ctx.config.limits.passwordResetTtlSeconds / 60)} minutes. Ask for a new one.`,
    );
  // Removed from every password account since (or turned into an SSO member): there is no password to reset any more.
  if (row.password_hash === null || !row.hasPasswordMembership)
    return fail("link_invalid", "This login no longer signs in with a password here, so its password cannot be reset.");
  return ok({ id: row.id, userId: row.user_id, email: row.email, twoFactorMethod: row.two_factor_method });
}

/** Checks a link before its page is drawn (a page is never shown for a token that names nothing): whose, and whether a code is needed. */
export async function checkPasswordReset(
  ctx: AppContext,
  token: string,
): Promise<Result<{ email: string; needsCode: boolean }, ResetLinkFailure>> {
  const found = await findReset(ctx, token);
  return found.ok ? ok({ email: found.value.email, needsCode: found.value.twoFactorMethod === "auth_app" }) : found;
}

export type ResetFailure =
  | ResetLinkFailure
  | PasswordProblem
  | "invalid_request"
  | "auth_app_required"
  | "auth_app_not_enabled"
  | "invalid_code_format"
  | "invalid_code"
  | "code_reused"
  | "too_many_attempts";

export interface ResetInput {
  token: string;
  password: string;
  /** A code from the authenticator app (auth-app users). */
  code?: string | undefined;
  /** A recovery code instead of the app code; spent when the reset succeeds. */
  recoveryCode?: string | undefined;
  info: RequestInfo;
}

/** What proved the second factor of a reset (the link itself proved the inbox). */
type ResetProof = "email_link" | CodeKind;

/** Thrown inside the redemption's transaction when another redemption won: undoes a code spent in it. */
class LostRedemption extends Error {}

/** Ends a link that must not be tried any further (too many wrong codes). */
async function voidReset(ctx: AppContext, id: string): Promise<void> {
  await ctx.db
    .updateTable("password_resets")
    .set({ voided_at: ctx.clock.now() })
    .where("id", "=", id)
    .where("used_at", "is", null)
    .execute();
}

/**
 * Sets a new password with a reset link. In order: the link (any failure ends here, nothing spent), the password's
 * rules, then — for an auth-app user — the code: counted per link (`codeFailuresPerChallenge` tries, then the link
 * ends) and per user (the sign-in's code limits, so the form is no second guessing oracle) before it is checked. The
 * code is spent and the link redeemed in one transaction, the link by a guarded UPDATE: of parallel redemptions exactly
 * one wins, and a loser's code spend is rolled back. On success every session, application sign-in, sign-in in
 * progress and other reset link of the user ends (`replacePassword`), each account's audit log records it, and the
 * address is told. Nobody is signed in.
 */
export async function resetPassword(ctx: AppContext, input: ResetInput): Promise<Result<{ userId: string; email: string }, ResetFailure>> {
  const { limits } = ctx.config;
  const found = await findReset(ctx, input.token);
  if (!found.ok) return found;
  const reset = found.value;
  const checked = checkNewPassword(input.password, limits);
  if (!checked.ok) return checked;

  let proof: ResetProof = "email_link";
  let normalized = "";
  let attempt = 0;
  let tries = 0;
  if (reset.twoFactorMethod === "auth_app") {
    const code = input.code?.trim() ? input.code : undefined;
    const recoveryCode = input.recoveryCode?.trim() ? input.recoveryCode : undefined;
    if (code !== undefined && recoveryCode !== undefined)
      return fail("invalid_request", "Enter an authentication code or a recovery code, not both.");
    const given = code ?? recoveryCode;
    if (given === undefined)
      return fail(
        "auth_app_required",
        "This login uses an authenticator app: enter the code from your app (or a recovery code) to set the new password.",
      );
    proof = code !== undefined ? "auth_app" : "recovery_code";
    const parsed = parseSecondFactorCode(proof, given);
    if (!parsed.ok) return parsed;
    normalized = parsed.value;

    const lockedFor = await codeEntryLockedFor(ctx, reset.userId);
    if (lockedFor > 0)
      return fail("too_many_attempts", `Too many wrong codes. Code entry is paused for ${Math.ceil(lockedFor / 60)} more minutes.`, {
        retryAfterSeconds: lockedFor,
      });
    // Claim one try on this link before checking anything, so parallel guesses cannot exceed the link's tries.
    const claim = await ctx.db
      .updateTable("password_resets")
      .set((eb) => ({ code_attempts: eb("code_attempts", "+", 1) }))
      .where("id", "=", reset.id)
      .where("used_at", "is", null)
      .where("voided_at", "is", null)
      .where("expires_at", ">", ctx.clock.now())
      .where("code_attempts", "<", limits.codeFailuresPerChallenge)
      .returning("code_attempts")
      .executeTakeFirst();
    if (!claim) {
      const current = await findReset(ctx, input.token);
      return current.ok
        ? fail(
            "link_invalid",
            `This link has had its ${limits.codeFailuresPerChallenge} tries at a code, so it no longer works. Ask for a new link.`,
          )
        : current;
    }
    tries = Number(claim.code_attempts);
    attempt = await claimCodeAttempt(ctx, reset.userId);
    if (attempt > limits.codeFailuresPerUser)
      return fail("too_many_attempts", "Too many wrong codes. Code entry is paused; try again later.", {
        retryAfterSeconds: limits.codeLockSeconds,
      });
  }

  // argon2id before the transaction: it takes tens of milliseconds, which no lock should wait for.
  const passwordHash = await hashPassword(checked.value);
  const now = ctx.clock.now();
  let outcome: { done: true; sessionsEnded: number } | { done: false; wrong: "invalid_code" | "code_reused" | "auth_app_not_enabled" };
  try {
    outcome = await ctx.db.transaction().execute(async (tx) => {
      const inTx = withTx(ctx, tx);
      if (proof !== "email_link") {
        const spent = await spendSecondFactorCode(inTx, { userId: reset.userId, kind: proof, normalized });
        if (spent !== "ok") return { done: false as const, wrong: spent };
      }
      // The race barrier: of parallel redemptions exactly one changes the row.
      const claimed = await tx
        .updateTable("password_resets")
        .set({ used_at: now })
        .where("id", "=", reset.id)
        .where("used_at", "is", null)
        .where("voided_at", "is", null)
        .where("expires_at", ">", now)
        .executeTakeFirst();
      if (Number(claimed.numUpdatedRows) !== 1) throw new LostRedemption();
      const sessionsEnded = await replacePassword(inTx, { userId: reset.userId, passwordHash });
      return { done: true as const, sessionsEnded };
    });
  } catch (error) {
    if (!(error instanceof LostRedemption)) throw error;
    const again = await findReset(ctx, input.token);
    return again.ok ? fail("link_used", "This password reset link was already used: each link works once.") : again;
  }

  if (!outcome.done) {
    // A parallel redemption with the same app code won (its time step is spent now): the link is used, not guessed at.
    const again = await findReset(ctx, input.token);
    if (!again.ok) return again;
    if (outcome.wrong === "auth_app_not_enabled")
      return fail("auth_app_not_enabled", "This login no longer uses an authenticator app. Open the link again to set your password.");
    const kind = proof as CodeKind;
    await recordEvent(ctx, {
      type: "password.reset_code_failed",
      userId: reset.userId,
      info: input.info,
      detail: { kind, reason: outcome.wrong },
    });
    const lockSeconds = await afterWrongCode(ctx, reset.userId, attempt, input.info);
    const base = wrongCodeMessage(kind, outcome.wrong);
    if (lockSeconds > 0) {
      await voidReset(ctx, reset.id);
      return fail(
        "too_many_attempts",
        `${base} Too many wrong codes: code entry is paused for ${Math.round(lockSeconds / 60)} minutes, and this link no longer works. We emailed you about it.`,
        { retryAfterSeconds: lockSeconds },
      );
    }
    const left = limits.codeFailuresPerChallenge - tries;
    if (left <= 0) {
      await voidReset(ctx, reset.id);
      return fail("link_invalid", `${base} Too many wrong codes for this link: it no longer works. Ask for a new link.`);
    }
    return fail(outcome.wrong, `${base} You can try ${left} more time${left === 1 ? "" : "s"} with this link.`, { attemptsLeft: left });
  }

  if (proof !== "email_link") await clearCodeFailures(ctx, reset.userId);
  // The person proved the inbox (and the app): a pause of sign-in that wrong passwords for this address caused ends, so
  // "sign in as usual" works at once.
  await ctx.attempts.reset(emailKey(reset.email));
  const remaining = proof === "recovery_code" ? await remainingRecoveryCodes(ctx.db, reset.userId) : null;
  await recordEventForEveryAccount(ctx, {
    type: "password.reset",
    userId: reset.userId,
    info: input.info,
    detail: {
      secondFactor: proof,
      sessionsEnded: outcome.sessionsEnded,
      ...(remaining !== null ? { recoveryCodesRemaining: remaining } : {}),
    },
  });
  await notifyUser(ctx, {
    userId: reset.userId,
    kind: "password_reset",
    info: input.info,
    facts: { proof, ...(remaining !== null ? { remaining } : {}) },
  });
  return ok({ userId: reset.userId, email: reset.email });
}
