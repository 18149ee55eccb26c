import type { AppContext, RequestInfo } from "../context.js";
import type { Role, TwoFactorPolicy } from "../db/schema.js";
import { fail, ok, type Result } from "../errors.js";
import type { TokenActor } from "../audit/events.js";
import { createAccountWithAdmin, findAccount, listAccounts, type AccountSummary } from "./accounts.js";
import { inviteMember, listPendingInvitations, type InviteFailure, type PendingInvitation } from "./invitations.js";
import { listTeamMembers, removeFromAccount, type TeamMember } from "./members.js";

/**
 * What the operator may do through the operator API (`/api/v1/admin/*`, with an API token): create accounts, list and
 * inspect them, invite people and remove members. These are the domain functions of `latchkey account create` and of
 * Account Admins, under the same rules (the last admin of an account stays), each change recorded with the token as
 * its actor. The operator never signs in as anyone, never sees or changes anyone's factors, never reads a secret.
 */

function accountNotFound(): { ok: false; reason: "account_not_found"; message: string } {
  return fail("account_not_found", "There is no account with that id.");
}

export async function operatorCreateAccount(
  ctx: AppContext,
  token: TokenActor,
  input: { name: string; adminEmail: string; info: RequestInfo },
): Promise<
  Result<
    { account: { id: string; name: string }; invitation: { url: string; expiresAt: number; emailed: boolean } },
    "account_name_invalid" | "email_invalid"
  >
> {
  // Unlike the CLI, which prints the link for the operator to pass on, the API also emails it: a program calls it.
  const created = await createAccountWithAdmin(ctx, {
    name: input.name,
    adminEmail: input.adminEmail,
    actorToken: token,
    info: input.info,
    emailAs: ctx.config.productName,
  });
  if (!created.ok) return created;
  return ok({
    account: { id: created.value.accountId, name: created.value.name },
    invitation: { url: created.value.invitationUrl, expiresAt: created.value.expiresAt, emailed: true },
  });
}

export async function operatorListAccounts(
  ctx: AppContext,
  query: { cursor?: string | undefined; limit?: number | undefined },
): Promise<Result<{ accounts: AccountSummary[]; nextCursor: string | null }, "invalid_request">> {
  const { operatorAccountsPageSize, operatorAccountsMaxPageSize } = ctx.config.limits;
  const limit = query.limit ?? operatorAccountsPageSize;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > operatorAccountsMaxPageSize)
    return fail("invalid_request", `"limit" must be a whole number from 1 to ${operatorAccountsMaxPageSize}.`);
  const page = await listAccounts(ctx, { cursor: query.cursor, limit });
  if (!page) return fail("invalid_request", '"cursor" is not valid: pass the nextCursor of the previous page as it is.');
  return ok(page);
}

export interface AccountOverview {
  account: { id: string; name: string; twoFactorPolicy: TwoFactorPolicy; createdAt: number };
  members: TeamMember[];
  invitations: PendingInvitation[];
}

/** An account with its members (role, two-factor method, last sign-in) and its open invitations. */
export async function operatorShowAccount(ctx: AppContext, accountId: string): Promise<Result<AccountOverview, "account_not_found">> {
  const account = await findAccount(ctx, accountId);
  if (!account) return accountNotFound();
  const [members, invitations] = await Promise.all([listTeamMembers(ctx, accountId), listPendingInvitations(ctx, accountId)]);
  return ok({ account, members, invitations });
}

export async function operatorInvite(
  ctx: AppContext,
  token: TokenActor,
  input: { accountId: string; email: string; role: Role; info: RequestInfo },
): Promise<
  Result<
    { invitationId: string; email: string; role: Role; url: string; expiresAt: number; emailed: boolean },
    InviteFailure | "account_not_found"
  >
> {
  const account = await findAccount(ctx, input.accountId);
  if (!account) return accountNotFound();
  const invited = await inviteMember(
    ctx,
    { userId: null, name: ctx.config.productName, accountId: account.id, isAdmin: true, token },
    { email: input.email, role: input.role, info: input.info },
  );
  if (!invited.ok) return invited;
  return ok({ ...invited.value, role: input.role });
}

/** Removes a member as an Account Admin's removal does: signed out at once, the login deleted if it was their only account. */
export async function operatorRemoveMember(
  ctx: AppContext,
  token: TokenActor,
  input: { accountId: string; userId: string; info: RequestInfo },
): Promise<Result<{ loginDeleted: boolean }, "account_not_found" | "member_not_found" | "last_admin">> {
  const account = await findAccount(ctx, input.accountId);
  if (!account) return accountNotFound();
  const removed = await removeFromAccount(ctx, account, { actorToken: token }, { userId: input.userId, info: input.info });
  if (!removed.ok) return removed;
  return ok({ loginDeleted: removed.value.loginDeleted });
}
