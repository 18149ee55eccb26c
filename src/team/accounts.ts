import type { AppContext } from "../context.js";
import { fail, ok, type Result } from "../errors.js";
import { recordEvent } from "../audit/events.js";
import { checkAccountName, checkEmail } from "../auth/emails.js";
import { newId } from "../auth/tokens.js";
import { createInvitation } from "./invitations.js";

/**
 * Creates a team account and invites its first Account Admin. Returns the invitation URL: the admin opens it to set
 * a password (or, if they already have a login, to join with it).
 */
export async function createAccountWithAdmin(
  ctx: AppContext,
  input: { name: string; adminEmail: string },
): Promise<Result<{ accountId: string; invitationUrl: string; expiresAt: number }, "account_name_invalid" | "email_invalid">> {
  const name = checkAccountName(input.name, ctx.config.limits);
  if (!name.ok) return name;
  const email = checkEmail(input.adminEmail, ctx.config.limits);
  if (!email.ok) return email;
  const accountId = newId();
  await ctx.db
    .insertInto("accounts")
    .values({ id: accountId, name: name.value, two_factor_policy: "email_link", created_at: ctx.clock.now() })
    .execute();
  await recordEvent(ctx, { type: "account.created", accountId, detail: { name: name.value, adminEmail: email.value } });
  const invitation = await createInvitation(ctx, { accountId, email: email.value, role: "admin", invitedByUserId: null });
  if (!invitation.ok) return fail("email_invalid", invitation.message);
  return ok({ accountId, invitationUrl: invitation.value.url, expiresAt: invitation.value.expiresAt });
}

export async function countAccounts(ctx: Pick<AppContext, "db">): Promise<number> {
  const row = await ctx.db
    .selectFrom("accounts")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
