import type { AppContext, RequestInfo } from "../context.js";
import { fail, ok, type Result } from "../errors.js";
import { recordEvent } from "../audit/events.js";
import { notifyUser } from "../audit/notices.js";
import { reauthenticate, type PasswordLogin } from "./fresh-proof.js";
import { checkNewPassword, hashPassword, type PasswordProblem } from "./passwords.js";
import { revokeUserSessions } from "./sessions.js";
import { issueDeviceToken } from "./devices.js";
import { endGrantsOfUser } from "../oidc/grants.js";

export type ChangePasswordFailure = "invalid_credentials" | "too_many_attempts" | PasswordProblem;

/**
 * Changes the password of a signed-in person. The current password is the fresh proof (checked with the same
 * throttle as any re-confirmation); every other session of the user ends, and the person is told by email. Every
 * device cookie of the user stops working with the old password hash; the browser making the change gets a new one.
 */
export async function changePassword(
  ctx: AppContext,
  login: PasswordLogin,
  input: { currentPassword: string; newPassword: string; info: RequestInfo },
): Promise<Result<{ otherSessionsEnded: number; deviceToken: string }, ChangePasswordFailure>> {
  const signedIn = login.session;
  const checked = checkNewPassword(input.newPassword, ctx.config.limits);
  if (!checked.ok) return checked;
  const proof = await reauthenticate(ctx, login, input.currentPassword, input.info);
  if (!proof.ok) return proof.reason === "invalid_credentials" ? fail("invalid_credentials", "Your current password is not right.") : proof;
  const now = ctx.clock.now();
  const passwordHash = await hashPassword(checked.value);
  await ctx.db.updateTable("users").set({ password_hash: passwordHash, updated_at: now }).where("id", "=", signedIn.user.id).execute();
  const ended = await revokeUserSessions(ctx, signedIn.user.id, signedIn.sessionId);
  // Applications signed in as this person, this browser's included, sign in again (the logout sweep tells them).
  await endGrantsOfUser(ctx, signedIn.user.id);
  // Half-finished sign-ins that already passed the old password must not finish either.
  await ctx.db
    .updateTable("challenges")
    .set({ consumed_at: now })
    .where("user_id", "=", signedIn.user.id)
    .where("consumed_at", "is", null)
    .execute();
  await recordEvent(ctx, {
    type: "password.changed",
    userId: signedIn.user.id,
    accountId: signedIn.account.id,
    info: input.info,
    detail: { otherSessionsEnded: ended },
  });
  await notifyUser(ctx, { userId: signedIn.user.id, kind: "password_changed", info: input.info });
  return ok({ otherSessionsEnded: ended, deviceToken: issueDeviceToken(ctx, { id: signedIn.user.id, passwordHash }) });
}
