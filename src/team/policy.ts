import { withTx, type AppContext, type RequestInfo } from "../context.js";
import type { TwoFactorPolicy } from "../db/schema.js";
import { fail, ok, type Result } from "../errors.js";
import { recordEvent } from "../audit/events.js";
import type { SignedIn } from "../auth/sessions.js";
import { policyEnabledMessage } from "../mail/messages.js";
import { queueMail } from "../mail/queue.js";
import { urlTo } from "../paths.js";

/** True when this session must set up the auth app before anything else: the account requires it, the member signs in with a password, and has not. SSO members are exempt. */
export function mustSetUpAuthApp(signedIn: SignedIn): boolean {
  return (
    signedIn.account.twoFactorPolicy === "auth_app_required" &&
    signedIn.signInMethod === "password" &&
    signedIn.user.twoFactorMethod !== "auth_app"
  );
}

export interface PolicyOverview {
  policy: TwoFactorPolicy;
  /**
   * The acting admin may turn the requirement on only once their own method is the auth app (the seed's rule). Never
   * from a session opened by SSO: its method is "sso", whatever the person's password login uses elsewhere.
   */
  canRequire: boolean;
  /** Password members without the auth app: they would have to set it up. */
  membersWithoutAuthApp: number;
  /** SSO members: exempt, counted apart. */
  ssoMembers: number;
  passwordMembers: number;
}

export async function policyOverview(ctx: Pick<AppContext, "db">, signedIn: SignedIn): Promise<PolicyOverview> {
  const rows = await ctx.db
    .selectFrom("memberships")
    .innerJoin("users", "users.id", "memberships.user_id")
    .select(["memberships.sign_in_method", "users.two_factor_method"])
    .where("memberships.account_id", "=", signedIn.account.id)
    .execute();
  return {
    policy: signedIn.account.twoFactorPolicy,
    canRequire: signedIn.user.twoFactorMethod === "auth_app",
    membersWithoutAuthApp: rows.filter((r) => r.sign_in_method === "password" && r.two_factor_method !== "auth_app").length,
    ssoMembers: rows.filter((r) => r.sign_in_method === "sso").length,
    passwordMembers: rows.filter((r) => r.sign_in_method === "password").length,
  };
}

/**
 * Turns "Require auth app for all team members" on or off. On: only an admin whose own method is the auth app
 * (so the person requiring it has been through it and cannot lock themselves out); the members who must now set it
 * up are emailed. The change applies to every session on the next request, because sessions read the policy live.
 */
export async function setTwoFactorPolicy(
  ctx: AppContext,
  signedIn: SignedIn,
  input: { policy: TwoFactorPolicy; info: RequestInfo },
): Promise<Result<{ notified: number }, "forbidden" | "policy_requires_auth_app">> {
  if (signedIn.role !== "admin") return fail("forbidden", "Only Account Admins can change the two-factor policy.");
  if (input.policy === "auth_app_required" && signedIn.user.twoFactorMethod === "sso") {
    return fail(
      "policy_requires_auth_app",
      "You signed in with single sign-on: only an admin signed in with a password and the auth app can require the auth app.",
    );
  }
  if (input.policy === "auth_app_required" && signedIn.user.twoFactorMethod !== "auth_app") {
    return fail(
      "policy_requires_auth_app",
      "Set up the auth app on your own login first (Edit your settings → Two-factor authentication → Manage), then require it for the team.",
    );
  }
  const before = signedIn.account.twoFactorPolicy;
  if (before === input.policy) return ok({ notified: 0 });
  // The change, its audit event and the members' emails commit together.
  return ctx.db.transaction().execute(async (tx) => {
    const txCtx = withTx(ctx, tx);
    await tx.updateTable("accounts").set({ two_factor_policy: input.policy }).where("id", "=", signedIn.account.id).execute();
    await recordEvent(txCtx, {
      type: "policy.changed",
      accountId: signedIn.account.id,
      actorUserId: signedIn.user.id,
      userId: signedIn.user.id,
      info: input.info,
      detail: { from: before, to: input.policy },
    });
    if (input.policy !== "auth_app_required") return ok({ notified: 0 });
    const affected = await tx
      .selectFrom("memberships")
      .innerJoin("users", "users.id", "memberships.user_id")
      .select("users.email")
      .where("memberships.account_id", "=", signedIn.account.id)
      .where("memberships.sign_in_method", "=", "password")
      .where("users.two_factor_method", "!=", "auth_app")
      .execute();
    const setupUrl = urlTo(ctx.config.publicUrl, "twoFactor");
    for (const { email } of affected) {
      await queueMail(
        txCtx,
        policyEnabledMessage({ to: email, productName: ctx.config.productName, accountName: signedIn.account.name, setupUrl }),
      );
    }
    return ok({ notified: affected.length });
  });
}
