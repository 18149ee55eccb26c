import type { AppContext, RequestInfo } from "../context.js";
import { fail, ok, type Result } from "../errors.js";
import { recordEvent } from "../audit/events.js";
import { verifyPassword } from "./passwords.js";
import type { SignedIn } from "./sessions.js";

/** True when the session proved a factor recently enough for a sensitive change (password, 2FA, recovery codes). */
export function hasFreshProof(ctx: Pick<AppContext, "clock" | "config">, signedIn: SignedIn): boolean {
  return ctx.clock.now() - signedIn.freshProofAt <= ctx.config.limits.freshProofSeconds * 1000;
}

/**
 * Password, auth app and recovery codes belong to the person's password login. A session opened by single sign-on
 * proved none of them (its fresh proof is the identity provider's word), so it may not change them: otherwise whoever
 * controls one account's provider could take over, or lock out, the second factor of the same person's password
 * accounts elsewhere.
 */
export function passwordLoginSession(signedIn: SignedIn): Result<null, "forbidden"> {
  if (signedIn.signInMethod === "password") return ok(null);
  return fail("forbidden", "You signed in with single sign-on: your password and two-factor authentication can only be changed after signing in with your password.");
}

/** Confirms the password again inside a session: the next `freshProofSeconds` allow sensitive changes. */
export async function reauthenticate(ctx: AppContext, signedIn: SignedIn, password: string, info: RequestInfo): Promise<Result<null, "invalid_credentials" | "too_many_attempts">> {
  const key = `reauth:user:${signedIn.user.id}`;
  const { limits } = ctx.config;
  // Count the attempt before checking it, so parallel wrong passwords cannot all slip in under the limit.
  const attempt = await ctx.attempts.hit(key, limits.passwordAttemptWindowSeconds);
  if (attempt > limits.reauthFailuresPerUser) {
    const retryAfterSeconds = Math.max(1, await ctx.attempts.retryAfterSeconds(key));
    return fail("too_many_attempts", `Too many wrong passwords. Try again in ${Math.ceil(retryAfterSeconds / 60)} minutes.`, { retryAfterSeconds });
  }
  const user = await ctx.db.selectFrom("users").select("password_hash").where("id", "=", signedIn.user.id).executeTakeFirst();
  if (!user?.password_hash || !(await verifyPassword(user.password_hash, password))) {
    await recordEvent(ctx, { type: "session.reauthentication_failed", userId: signedIn.user.id, accountId: signedIn.account.id, info });
    return fail("invalid_credentials", "That password is not right.");
  }
  await ctx.attempts.reset(key);
  await ctx.db.updateTable("sessions").set({ fresh_proof_at: ctx.clock.now() }).where("id", "=", signedIn.sessionId).execute();
  await recordEvent(ctx, { type: "session.reauthenticated", userId: signedIn.user.id, accountId: signedIn.account.id, info });
  return ok(null);
}
