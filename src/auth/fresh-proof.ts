import type { AppContext, RequestInfo } from "../context.js";
import { fail, ok, type Result } from "../errors.js";
import { recordEvent } from "../audit/events.js";
import { verifyPassword } from "./passwords.js";
import type { SignedIn } from "./sessions.js";

/** True when the session proved a factor recently enough for a sensitive change (password, 2FA, recovery codes). */
export function hasFreshProof(ctx: Pick<AppContext, "clock" | "config">, signedIn: SignedIn): boolean {
  return ctx.clock.now() - signedIn.freshProofAt <= ctx.config.limits.freshProofSeconds * 1000;
}

/** Why an SSO session is refused every factor route (tests look for it: a 403 for another reason does not count). */
const SSO_SESSION_MESSAGE =
  "You signed in with single sign-on: your password and two-factor authentication can only be seen or changed after signing in with your password.";

declare const passwordLoginBrand: unique symbol;

/**
 * The signed-in person's password login, as every read or change of its factors takes it: the password, the auth app
 * key (pending or active), the setup's state, recovery codes (revealed, remaining, regenerated). `passwordLoginFactors`
 * is the only way to get one, so a new factor function cannot forget the check: it asks for a `PasswordLogin`, and
 * the caller has to go through the guard to have one.
 */
export interface PasswordLogin {
  readonly userId: string;
  readonly session: SignedIn;
  readonly [passwordLoginBrand]: true;
}

/**
 * The one guard. Password, auth app and recovery codes belong to the person's password login. A session opened by
 * single sign-on proved none of them (its fresh proof is the identity provider's word), so it may neither read nor
 * change them: otherwise whoever controls one account's provider could read a pending key and fresh codes, take over
 * or lock out the second factor of the same person's password accounts elsewhere. Such a session sees its method as
 * "sso" and nothing more.
 */
export function passwordLoginFactors(signedIn: SignedIn): Result<PasswordLogin, "forbidden"> {
  if (signedIn.signInMethod !== "password") return fail("forbidden", SSO_SESSION_MESSAGE);
  return ok({ userId: signedIn.user.id, session: signedIn } as PasswordLogin);
}

/** Confirms the password again inside a session: the next `freshProofSeconds` allow sensitive changes. */
export async function reauthenticate(
  ctx: AppContext,
  login: PasswordLogin,
  password: string,
  info: RequestInfo,
): Promise<Result<null, "invalid_credentials" | "too_many_attempts">> {
  const { userId, session: signedIn } = login;
  const key = `reauth:user:${userId}`;
  const { limits } = ctx.config;
  // Count the attempt before checking it, so parallel wrong passwords cannot all slip in under the limit.
  const attempt = await ctx.attempts.hit(key, limits.passwordAttemptWindowSeconds);
  if (attempt > limits.reauthFailuresPerUser) {
    const retryAfterSeconds = Math.max(1, await ctx.attempts.retryAfterSeconds(key));
    return fail("too_many_attempts", `Too many wrong passwords. Try again in ${Math.ceil(retryAfterSeconds / 60)} minutes.`, {
      retryAfterSeconds,
    });
  }
  const user = await ctx.db.selectFrom("users").select("password_hash").where("id", "=", userId).executeTakeFirst();
  if (!user?.password_hash || !(await verifyPassword(user.password_hash, password))) {
    await recordEvent(ctx, { type: "session.reauthentication_failed", userId, accountId: signedIn.account.id, info });
    return fail("invalid_credentials", "That password is not right.");
  }
  await ctx.attempts.reset(key);
  await ctx.db.updateTable("sessions").set({ fresh_proof_at: ctx.clock.now() }).where("id", "=", signedIn.sessionId).execute();
  await recordEvent(ctx, { type: "session.reauthenticated", userId, accountId: signedIn.account.id, info });
  return ok(null);
}
