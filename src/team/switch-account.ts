import type { AppContext, RequestInfo } from "../context.js";
import type { Role } from "../db/schema.js";
import { fail, ok, type Result } from "../errors.js";
import { recordEvent } from "../audit/events.js";
import type { SignedIn } from "../auth/sessions.js";

export interface AccountChoice {
  id: string;
  name: string;
  role: Role;
  current: boolean;
}

/** The accounts a signed-in person can use with this session (the ones they sign in to with a password). */
export async function accountsOf(ctx: Pick<AppContext, "db">, signedIn: SignedIn): Promise<AccountChoice[]> {
  const rows = await ctx.db
    .selectFrom("memberships")
    .innerJoin("accounts", "accounts.id", "memberships.account_id")
    .select(["accounts.id", "accounts.name", "memberships.role"])
    .where("memberships.user_id", "=", signedIn.user.id)
    .where("memberships.sign_in_method", "=", signedIn.signInMethod)
    .orderBy("accounts.name")
    .execute();
  return rows.map((r) => ({ id: r.id, name: r.name, role: r.role, current: r.id === signedIn.account.id }));
}

/** Moves the session to another of the person's accounts; that account's policy applies from the next request. */
export async function switchAccount(
  ctx: AppContext,
  signedIn: SignedIn,
  input: { accountId: string; info: RequestInfo },
): Promise<Result<{ accountId: string }, "member_not_found">> {
  const member = await ctx.db
    .selectFrom("memberships")
    .select("id")
    .where("user_id", "=", signedIn.user.id)
    .where("account_id", "=", input.accountId)
    .where("sign_in_method", "=", signedIn.signInMethod)
    .executeTakeFirst();
  if (!member) return fail("member_not_found", "You are not a member of that account.");
  const now = ctx.clock.now();
  await ctx.db.updateTable("sessions").set({ account_id: input.accountId }).where("id", "=", signedIn.sessionId).execute();
  await ctx.db.updateTable("memberships").set({ last_sign_in_at: now }).where("id", "=", member.id).execute();
  await recordEvent(ctx, {
    type: "session.account_switched",
    accountId: input.accountId,
    userId: signedIn.user.id,
    info: input.info,
    detail: { from: signedIn.account.id },
  });
  return ok({ accountId: input.accountId });
}
