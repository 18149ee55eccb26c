import type { AppContext, RequestInfo } from "../context.js";
import { fail, ok, type Result } from "../errors.js";
import { recordEvent } from "../audit/events.js";
import { notifyUser } from "../audit/notices.js";
import { findLiveChallenge, consumeChallenge } from "./challenges.js";
import { afterWrongCode, claimCodeAttempt, clearCodeFailures, codeEntryLockedFor } from "./code-limits.js";
import { normalizeRecoveryCode, remainingRecoveryCodes, spendRecoveryCode } from "./recovery-codes.js";
import { createSecretBox } from "./secret-box.js";
import { pickAccountForSignIn } from "./sessions.js";
import { matchTotp, parseTotpCode } from "./totp.js";
import { completeSignIn } from "./sign-in-finish.js";
import { countSignIn } from "../observability/metrics.js";

export type CodeKind = "auth_app" | "recovery_code";

export type CodeFailure =
  "challenge_expired" | "invalid_code_format" | "invalid_code" | "code_reused" | "too_many_attempts" | "auth_app_not_enabled";

export interface CodeSignIn {
  sessionToken: string;
  userId: string;
  accountId: string;
  /** After a recovery code: how many are left. */
  recoveryCodesRemaining: number | null;
  /** The person belongs to several accounts: offer the choice. */
  chooseAccount: boolean;
  /** The device cookie for this browser, now that password and second factor passed in it (null without a password). */
  deviceToken: string | null;
}

export function totpBox(ctx: Pick<AppContext, "config">): ReturnType<typeof createSecretBox> {
  return createSecretBox(ctx.config.secretKey, ctx.config.previousSecretKeys, "totp");
}

/**
 * Checks a TOTP code for a user. Accepts the current step ± drift, and only a step newer than the last accepted one:
 * the guarded UPDATE of `totp_last_step` makes a code (or an older one) usable once, across browsers and instances.
 */
async function acceptTotpCode(ctx: AppContext, userId: string, code: string): Promise<CodeOutcome> {
  const user = await ctx.db
    .selectFrom("users")
    .select(["totp_secret_sealed", "totp_last_step", "two_factor_method"])
    .where("id", "=", userId)
    .executeTakeFirst();
  if (!user || user.two_factor_method !== "auth_app" || user.totp_secret_sealed === null) return "auth_app_not_enabled";
  const secret = totpBox(ctx).open(user.totp_secret_sealed, userId);
  const { limits } = ctx.config;
  const common = { secret, code, nowMs: ctx.clock.now(), stepSeconds: limits.totpStepSeconds, driftSteps: limits.totpDriftSteps };
  const step = await matchTotp({ ...common, afterStep: user.totp_last_step });
  if (step === null) {
    // Tell a replay apart from a wrong code, so the person knows to wait for the next code.
    return user.totp_last_step !== null && (await matchTotp({ ...common, afterStep: null })) !== null ? "code_reused" : "invalid_code";
  }
  const claimed = await ctx.db
    .updateTable("users")
    .set({ totp_last_step: step })
    .where("id", "=", userId)
    .where((eb) => eb.or([eb("totp_last_step", "is", null), eb("totp_last_step", "<", step)]))
    .executeTakeFirst();
  return Number(claimed.numUpdatedRows) === 1 ? "ok" : "code_reused";
}

/** What checking a second-factor code came to. */
export type CodeOutcome = "ok" | "invalid_code" | "code_reused" | "auth_app_not_enabled";

/**
 * The comparable form of a typed code (an app code's six digits, a recovery code without dashes), or why it cannot be
 * one. A malformed code is refused before anything is counted.
 */
export function parseSecondFactorCode(kind: CodeKind, input: string): Result<string, "invalid_code_format"> {
  if (kind === "auth_app") {
    const shape = parseTotpCode(input);
    return shape.ok ? ok(shape.code) : fail("invalid_code_format", shape.message);
  }
  const recovery = normalizeRecoveryCode(input);
  return recovery === null
    ? fail("invalid_code_format", "A recovery code has 15 letters and digits, like abcde-12345-fghjk.")
    : ok(recovery);
}

/**
 * Checks and spends an auth-app user's code (parsed by `parseSecondFactorCode`): an app code's time step, or a recovery
 * code. Both are spent by guarded UPDATEs through `ctx.db`: pass a transaction context (`withTx`) when the spend must
 * stand or fall with the change it allows. Counting and limits are the caller's (code-limits.ts).
 */
export async function spendSecondFactorCode(
  ctx: AppContext,
  input: { userId: string; kind: CodeKind; normalized: string },
): Promise<CodeOutcome> {
  if (input.kind === "auth_app") return acceptTotpCode(ctx, input.userId, input.normalized);
  const user = await ctx.db.selectFrom("users").select("two_factor_method").where("id", "=", input.userId).executeTakeFirst();
  if (user?.two_factor_method !== "auth_app") return "auth_app_not_enabled";
  return (await spendRecoveryCode(ctx.db, ctx.config, { userId: input.userId, normalized: input.normalized, now: ctx.clock.now() }))
    ? "ok"
    : "invalid_code";
}

const messages = {
  invalid_code: "That code is not right.",
  code_reused: "That code was already used. Wait for the next code in your app, then enter it.",
  recovery_invalid: "That recovery code is not right, or it was already used.",
} as const;

/** What a person reads after a wrong or reused code. */
export function wrongCodeMessage(kind: CodeKind, outcome: "invalid_code" | "code_reused"): string {
  return kind === "recovery_code" ? messages.recovery_invalid : messages[outcome];
}

/**
 * The second step for auth-app users: a code from the app, or a recovery code instead. Limits: each challenge allows
 * `codeFailuresPerChallenge` tries (claimed before checking, so parallel requests cannot exceed it), then the
 * password is needed again; each user `codeFailuresPerUser` consecutive failures, then code entry locks.
 */
async function codeStep(
  ctx: AppContext,
  input: { challengeToken: string | undefined; code: string; kind: CodeKind; info: RequestInfo },
): Promise<Result<CodeSignIn, CodeFailure>> {
  const { limits } = ctx.config;
  const challenge = await findLiveChallenge(ctx, input.challengeToken);
  if (!challenge) return fail("challenge_expired", "Your sign-in has ended. Sign in again with your email and password.");

  const parsed = parseSecondFactorCode(input.kind, input.code);
  if (!parsed.ok) return parsed;
  const normalized = parsed.value;

  const lockedFor = await codeEntryLockedFor(ctx, challenge.user_id);
  if (lockedFor > 0) {
    return fail("too_many_attempts", `Too many wrong codes. Code entry is paused for ${Math.ceil(lockedFor / 60)} more minutes.`, {
      retryAfterSeconds: lockedFor,
    });
  }

  // Claim one try on this challenge before checking anything.
  const claim = await ctx.db
    .updateTable("challenges")
    .set((eb) => ({ failed_attempts: eb("failed_attempts", "+", 1) }))
    .where("id", "=", challenge.id)
    .where("consumed_at", "is", null)
    .where("expires_at", ">", ctx.clock.now())
    .where("failed_attempts", "<", limits.codeFailuresPerChallenge)
    .returning("failed_attempts")
    .executeTakeFirst();
  if (!claim) return fail("challenge_expired", "Too many wrong codes for this sign-in. Sign in again with your email and password.");
  const attempt = await claimCodeAttempt(ctx, challenge.user_id);
  if (attempt > limits.codeFailuresPerUser) {
    return fail("too_many_attempts", "Too many wrong codes. Code entry is paused; try again later.", {
      retryAfterSeconds: limits.codeLockSeconds,
    });
  }

  const now = ctx.clock.now();
  const outcome = await spendSecondFactorCode(ctx, { userId: challenge.user_id, kind: input.kind, normalized });
  if (outcome === "auth_app_not_enabled")
    return fail("auth_app_not_enabled", "This login does not use an authenticator app. Finish signing in with the emailed link.");

  if (outcome !== "ok") {
    ctx.metrics.secondFactorFailure(input.kind, outcome);
    await recordEvent(ctx, {
      type: "sign_in.code_failed",
      userId: challenge.user_id,
      info: input.info,
      detail: { kind: input.kind, reason: outcome },
    });
    const lockSeconds = await afterWrongCode(ctx, challenge.user_id, attempt, input.info);
    const base = wrongCodeMessage(input.kind, outcome);
    if (lockSeconds > 0) {
      await consumeChallenge(ctx.db, challenge.id, now);
      return fail(
        "too_many_attempts",
        `${base} Too many wrong codes: code entry is paused for ${Math.round(lockSeconds / 60)} minutes. We emailed you about it.`,
        { retryAfterSeconds: lockSeconds },
      );
    }
    const left = limits.codeFailuresPerChallenge - Number(claim.failed_attempts);
    if (left <= 0) {
      await consumeChallenge(ctx.db, challenge.id, now);
      return fail("challenge_expired", `${base} Too many wrong codes for this sign-in: sign in again with your email and password.`);
    }
    return fail(outcome, `${base} You can try ${left} more time${left === 1 ? "" : "s"}.`, { attemptsLeft: left });
  }

  await clearCodeFailures(ctx, challenge.user_id);
  const accountId = await pickAccountForSignIn(ctx, challenge.user_id);
  if (accountId === null)
    return fail("challenge_expired", "You are no longer a member of any team account. Ask an Account Admin to invite you again.");
  const signedIn = await ctx.db.transaction().execute(async (tx) => {
    if (!(await consumeChallenge(tx, challenge.id, now))) return null;
    return completeSignIn(ctx, tx, { userId: challenge.user_id, accountId, proof: input.kind, info: input.info });
  });
  if (!signedIn) return fail("challenge_expired", "This sign-in has already finished. Sign in again if you need to.");

  let remaining: number | null = null;
  if (input.kind === "recovery_code") {
    remaining = await remainingRecoveryCodes(ctx.db, challenge.user_id);
    await recordEvent(ctx, {
      type: "sign_in.recovery_code_used",
      userId: challenge.user_id,
      accountId,
      info: input.info,
      detail: { remaining },
    });
    await notifyUser(ctx, { userId: challenge.user_id, kind: "recovery_code_used", info: input.info, facts: { remaining } });
  }
  return ok({ ...signedIn, recoveryCodesRemaining: remaining });
}

/** The code step (`codeStep` above), counted in the metrics as an `auth_app` or `recovery_code` sign-in step. */
export function signInWithCode(ctx: AppContext, input: Parameters<typeof codeStep>[1]): ReturnType<typeof codeStep> {
  return countSignIn(ctx.metrics, input.kind, codeStep(ctx, input));
}
