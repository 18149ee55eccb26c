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
 * What every new password brings with it, whether changed in a session or reset from the inbox: the hash replaced, and
 * everything that rode on the old password ended — the user's sessions (but `keepSessionId`, the browser making a
 * change), the applications signed in through them (the logout sweep tells them), sign-ins that already passed the old
 * password, reset links not yet used, and a pending change of email address. Device cookies need nothing: they are bound to the password hash
 * (devices.ts), so every one of them stops counting now. `ctx` may be a transaction (`withTx`). Returns how many
 * sessions ended.
 */
export async function replacePassword(
  ctx: AppContext,
  input: { userId: string; passwordHash: string; keepSessionId?: string },
): Promise<number> {
  const now = ctx.clock.now();
  await ctx.db.updateTable("users").set({ password_hash: input.passwordHash, updated_at: now }).where("id", "=", input.userId).execute();
  const ended = await revokeUserSessions(ctx, input.userId, input.keepSessionId);
  // Applications signed in as this person, the kept browser's included, sign in again.
  await endGrantsOfUser(ctx, input.userId);
  // Half-finished sign-ins that already passed the old password must not finish either (their email links with them).
  await ctx.db
    .updateTable("challenges")
    .set({ consumed_at: now })
    .where("user_id", "=", input.userId)
    .where("consumed_at", "is", null)
    .execute();
  await ctx.db
    .updateTable("password_resets")
    .set({ voided_at: now })
    .where("user_id", "=", input.userId)
    .where("used_at", "is", null)
    .where("voided_at", "is", null)
    .execute();
  // A change of email address asked for with the old password (perhaps from a stolen session) must not complete after
  // the person secured the login: its link from the new inbox stops working ("cancelled").
  await ctx.db
    .updateTable("email_changes")
    .set({ cancelled_at: now })
    .where("user_id", "=", input.userId)
    .where("confirmed_at", "is", null)
    .where("cancelled_at", "is", null)
    .where("voided_at", "is", null)
    .execute();
  return ended;
}

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
  const passwordHash = await hashPassword(checked.value);
  const ended = await replacePassword(ctx, { userId: signedIn.user.id, passwordHash, keepSessionId: signedIn.sessionId });
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
