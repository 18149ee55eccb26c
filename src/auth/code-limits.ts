import type { AppContext, RequestInfo } from "../context.js";
import { recordEvent } from "../audit/events.js";
import { notifyUser } from "../audit/notices.js";

/**
 * Guessing limits for second-factor codes (app and recovery codes alike), shared by every instance through the
 * attempt store. A user's counter is bumped BEFORE a code is checked, so parallel guesses cannot all slip in
 * under the limit: of N parallel tries only the first `codeFailuresPerUser` are ever checked.
 */
const failKey = (userId: string): string => `code:fail:${userId}`;
const lockKey = (userId: string): string => `code:locked:${userId}`;
const lockLevelKey = (userId: string): string => `code:locks:${userId}`;

/** Seconds left on a lock of code entry, or 0. */
export async function codeEntryLockedFor(ctx: AppContext, userId: string): Promise<number> {
  if ((await ctx.attempts.count(lockKey(userId))) === 0) return 0;
  return Math.max(1, await ctx.attempts.retryAfterSeconds(lockKey(userId)));
}

/** Counts one attempt for the user. Returns its ordinal: above `codeFailuresPerUser` it must not be checked. */
export async function claimCodeAttempt(ctx: AppContext, userId: string): Promise<number> {
  return ctx.attempts.hit(failKey(userId), ctx.config.limits.codeLockMemorySeconds);
}

export async function clearCodeFailures(ctx: AppContext, userId: string): Promise<void> {
  await ctx.attempts.reset(failKey(userId));
}

/** Forgets everything about the user's code guessing: the failures, a lock, and the locks remembered for doubling. */
export async function resetCodeLimits(ctx: AppContext, userId: string): Promise<void> {
  for (const key of [failKey(userId), lockKey(userId), lockLevelKey(userId)]) await ctx.attempts.reset(key);
}

/**
 * After a wrong code: the attempt that reaches the limit locks code entry for 15 minutes, doubling with each lock
 * remembered (up to the maximum), and tells the person by email. Returns the lock in seconds, or 0.
 */
export async function afterWrongCode(ctx: AppContext, userId: string, attemptNumber: number, info: RequestInfo): Promise<number> {
  const { limits } = ctx.config;
  if (attemptNumber !== limits.codeFailuresPerUser) return 0;
  const level = await ctx.attempts.hit(lockLevelKey(userId), limits.codeLockMemorySeconds);
  const lockSeconds = Math.min(limits.codeLockSeconds * 2 ** (level - 1), limits.codeLockMaxSeconds);
  await ctx.attempts.reset(lockKey(userId));
  await ctx.attempts.hit(lockKey(userId), lockSeconds);
  await ctx.attempts.reset(failKey(userId));
  ctx.metrics.secondFactorLock();
  await recordEvent(ctx, {
    type: "sign_in.code_entry_locked",
    userId,
    info,
    detail: { lockSeconds, failures: limits.codeFailuresPerUser },
  });
  await notifyUser(ctx, {
    userId,
    kind: "code_entry_locked",
    info,
    facts: { failures: limits.codeFailuresPerUser, minutes: Math.round(lockSeconds / 60) },
  });
  return lockSeconds;
}
