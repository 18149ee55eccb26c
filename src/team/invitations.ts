import { withTx, type AppContext, type RequestInfo } from "../context.js";
import type { Role } from "../db/schema.js";
import { fail, ok, type Result } from "../errors.js";
import { recordEvent, type TokenActor } from "../audit/events.js";
import { checkEmail, checkName } from "../auth/emails.js";
import { checkNewPassword, hashPassword, verifyPassword, type PasswordProblem } from "../auth/passwords.js";
import { hashToken, looksLikeToken, newId, newToken } from "../auth/tokens.js";
import { invitationMessage } from "../mail/messages.js";
import { queueMail } from "../mail/queue.js";
import { emailKey, passwordBudget } from "../auth/sign-in.js";
import { urlTo } from "../paths.js";

export function invitationUrl(ctx: Pick<AppContext, "config">, token: string): string {
  return urlTo(ctx.config.publicUrl, "invitation", { token });
}

/** The mail queue key of an email's invitations to an account: a newer invitation's email supersedes an older one not yet sent. */
function invitationMailKey(accountId: string, email: string): string {
  return `invitation:${accountId}:${email}`;
}

/**
 * Invites an email to an account. Older open invitations of the same email to the same account are revoked. With
 * `emailAs`, the invitation email (signed with that name) is queued in the same transaction, superseding an older
 * invitation email of the same address not yet delivered; without it (`latchkey account create`), the caller hands
 * the link on itself.
 */
export async function createInvitation(
  ctx: AppContext,
  input: {
    accountId: string;
    email: string;
    role: Role;
    invitedByUserId: string | null;
    actorToken?: TokenActor;
    info?: RequestInfo;
    emailAs?: string;
  },
): Promise<Result<{ invitationId: string; url: string; token: string; expiresAt: number }, "email_invalid">> {
  const email = checkEmail(input.email, ctx.config.limits);
  if (!email.ok) return email;
  const now = ctx.clock.now();
  const token = newToken();
  const id = newId();
  const expiresAt = now + ctx.config.limits.invitationTtlSeconds * 1000;
  await ctx.db.transaction().execute(async (tx) => {
    // Serialise invitations per account on PostgreSQL (SQLite has one writer anyway): two parallel resends must not
    // both revoke the older link and then both insert, leaving two working links.
    if (ctx.dialect === "postgres") await tx.selectFrom("accounts").select("id").where("id", "=", input.accountId).forUpdate().execute();
    await tx
      .updateTable("invitations")
      .set({ revoked_at: now })
      .where("account_id", "=", input.accountId)
      .where("email", "=", email.value)
      .where("accepted_at", "is", null)
      .where("revoked_at", "is", null)
      .execute();
    await tx
      .insertInto("invitations")
      .values({
        id,
        account_id: input.accountId,
        email: email.value,
        role: input.role,
        token_hash: hashToken(token),
        created_by_user_id: input.invitedByUserId,
        created_at: now,
        expires_at: expiresAt,
        accepted_at: null,
        revoked_at: null,
      })
      .execute();
    if (input.emailAs !== undefined) {
      const account = await tx.selectFrom("accounts").select("name").where("id", "=", input.accountId).executeTakeFirstOrThrow();
      await queueMail(
        withTx(ctx, tx),
        invitationMessage({
          to: email.value,
          productName: ctx.config.productName,
          accountName: account.name,
          invitedBy: input.emailAs,
          url: invitationUrl(ctx, token),
          expiresInDays: Math.round(ctx.config.limits.invitationTtlSeconds / 86400),
        }),
        { key: invitationMailKey(input.accountId, email.value) },
      );
    }
  });
  await recordEvent(ctx, {
    type: "invitation.created",
    accountId: input.accountId,
    actorUserId: input.invitedByUserId,
    actorToken: input.actorToken,
    ...(input.info ? { info: input.info } : {}),
    detail: { email: email.value, role: input.role },
  });
  return ok({ invitationId: id, url: invitationUrl(ctx, token), token, expiresAt });
}

export interface OpenInvitation {
  id: string;
  accountId: string;
  accountName: string;
  email: string;
  role: Role;
  /** The invited email already has a login with a password: they join by entering it instead of setting one. */
  existingUser: { id: string; name: string } | null;
}

export type InvitationFailure = "invitation_invalid" | "invitation_expired" | "invitation_used";

/** The invitation behind a link, if it can still be accepted. */
export async function findOpenInvitation(
  ctx: Pick<AppContext, "db" | "clock">,
  token: string,
): Promise<Result<OpenInvitation, InvitationFailure>> {
  if (!looksLikeToken(token)) return fail("invitation_invalid", "This invitation link is not valid. Check that you copied the whole link.");
  const row = await ctx.db
    .selectFrom("invitations")
    .innerJoin("accounts", "accounts.id", "invitations.account_id")
    .select([
      "invitations.id",
      "invitations.account_id",
      "accounts.name as accountName",
      "invitations.email",
      "invitations.role",
      "invitations.expires_at",
      "invitations.accepted_at",
      "invitations.revoked_at",
    ])
    .where("invitations.token_hash", "=", hashToken(token))
    .executeTakeFirst();
  if (!row || row.revoked_at !== null)
    return fail("invitation_invalid", "This invitation link is not valid any more. Ask an Account Admin to invite you again.");
  if (row.accepted_at !== null)
    return fail("invitation_used", "This invitation was already accepted. Sign in with your email and password.");
  if (row.expires_at <= ctx.clock.now())
    return fail("invitation_expired", "This invitation has expired. Ask an Account Admin to send a new one.");
  const user = await ctx.db.selectFrom("users").select(["id", "name", "password_hash"]).where("email", "=", row.email).executeTakeFirst();
  return ok({
    id: row.id,
    accountId: row.account_id,
    accountName: row.accountName,
    email: row.email,
    role: row.role,
    existingUser: user && user.password_hash !== null ? { id: user.id, name: user.name } : null,
  });
}

export type AcceptFailure = InvitationFailure | PasswordProblem | "name_invalid" | "invalid_credentials" | "too_many_attempts";

/**
 * Accepts an invitation: a new person sets name and password; a person who already has a login proves it with their
 * password. The invitation is claimed by a guarded UPDATE inside the transaction, so of parallel acceptances exactly
 * one creates the membership.
 */
export async function acceptInvitation(
  ctx: AppContext,
  input: { token: string; name: string; password: string; info: RequestInfo; deviceToken?: string | undefined },
): Promise<Result<{ userId: string; accountId: string; email: string; joinedWithExistingLogin: boolean }, AcceptFailure>> {
  const found = await findOpenInvitation(ctx, input.token);
  if (!found.ok) return found;
  const invitation = found.value;
  const { limits } = ctx.config;

  let userId: string;
  let newUser: { name: string; passwordHash: string } | null = null;
  if (invitation.existingUser) {
    const user = await ctx.db
      .selectFrom("users")
      .select(["id", "password_hash"])
      .where("id", "=", invitation.existingUser.id)
      .executeTakeFirstOrThrow();
    // The same budget as the sign-in form, counted first: an invitation link is no way around it. From a trusted
    // device of this user that is the device's own counter, so an attacker's lock of the email does not block joining.
    const budget = passwordBudget(ctx, {
      emailKey: emailKey(invitation.email),
      user: { id: user.id, passwordHash: user.password_hash },
      deviceToken: input.deviceToken,
    });
    const attempt = await ctx.attempts.hit(budget.key, limits.passwordAttemptWindowSeconds);
    if (attempt > budget.limit) {
      return fail("too_many_attempts", "Too many wrong passwords. Try again in a few minutes.", {
        retryAfterSeconds: Math.max(1, await ctx.attempts.retryAfterSeconds(budget.key)),
      });
    }
    if (user.password_hash === null || !(await verifyPassword(user.password_hash, input.password))) {
      return fail("invalid_credentials", "That is not the password of this login. Enter the password you already use to sign in.");
    }
    await ctx.attempts.reset(budget.key);
    userId = user.id;
  } else {
    const name = checkName(input.name, limits);
    if (!name.ok) return name;
    const password = checkNewPassword(input.password, limits);
    if (!password.ok) return password;
    newUser = { name: name.value, passwordHash: await hashPassword(password.value) };
    userId = newId();
  }

  const now = ctx.clock.now();
  return ctx.db.transaction().execute(async (tx) => {
    const claimed = await tx
      .updateTable("invitations")
      .set({ accepted_at: now })
      .where("id", "=", invitation.id)
      .where("accepted_at", "is", null)
      .where("revoked_at", "is", null)
      .where("expires_at", ">", now)
      .executeTakeFirst();
    if (Number(claimed.numUpdatedRows) !== 1)
      return fail("invitation_used", "This invitation was already accepted. Sign in with your email and password.");
    if (newUser) {
      // A user row may exist without a password (e.g. invited before, never finished): reuse it, else create one.
      const existing = await tx.selectFrom("users").select("id").where("email", "=", invitation.email).executeTakeFirst();
      if (existing) {
        userId = existing.id;
        await tx
          .updateTable("users")
          .set({ name: newUser.name, password_hash: newUser.passwordHash, updated_at: now })
          .where("id", "=", userId)
          .execute();
      } else {
        await tx
          .insertInto("users")
          .values({
            id: userId,
            email: invitation.email,
            name: newUser.name,
            password_hash: newUser.passwordHash,
            two_factor_method: "email_link",
            created_at: now,
            updated_at: now,
          })
          .execute();
      }
    }
    const member = await tx
      .selectFrom("memberships")
      .select("id")
      .where("account_id", "=", invitation.accountId)
      .where("user_id", "=", userId)
      .executeTakeFirst();
    if (member) {
      await tx.updateTable("memberships").set({ role: invitation.role }).where("id", "=", member.id).execute();
    } else {
      await tx
        .insertInto("memberships")
        .values({
          id: newId(),
          account_id: invitation.accountId,
          user_id: userId,
          role: invitation.role,
          sign_in_method: "password",
          created_at: now,
          last_sign_in_at: null,
        })
        .execute();
    }
    await recordEvent(withTx(ctx, tx), {
      type: "invitation.accepted",
      accountId: invitation.accountId,
      userId,
      info: input.info,
      detail: { email: invitation.email, role: invitation.role },
    });
    return ok({ userId, accountId: invitation.accountId, email: invitation.email, joinedWithExistingLogin: newUser === null });
  });
}

export interface PendingInvitation {
  id: string;
  email: string;
  role: Role;
  createdAt: number;
  expiresAt: number;
  expired: boolean;
}

/** Open invitations of an account (not accepted, not revoked), newest first; expired ones are flagged, not hidden. */
export async function listPendingInvitations(ctx: Pick<AppContext, "db" | "clock">, accountId: string): Promise<PendingInvitation[]> {
  const rows = await ctx.db
    .selectFrom("invitations")
    .select(["id", "email", "role", "created_at", "expires_at"])
    .where("account_id", "=", accountId)
    .where("accepted_at", "is", null)
    .where("revoked_at", "is", null)
    .orderBy("created_at", "desc")
    .execute();
  const now = ctx.clock.now();
  return rows.map((r) => ({
    id: r.id,
    email: r.email,
    role: r.role,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    expired: r.expires_at <= now,
  }));
}

export type InviteFailure = "forbidden" | "email_invalid" | "already_member";

/**
 * Who invites: an Account Admin (their user id and name), or the operator through an API token (no user; the
 * product's name signs the email).
 */
export interface Inviter {
  userId: string | null;
  name: string;
  accountId: string;
  isAdmin: boolean;
  token?: TokenActor;
}

/** An Account Admin invites someone by email with a role; the invitation email carries the 7-day, single-use link. */
export async function inviteMember(
  ctx: AppContext,
  actor: Inviter,
  input: { email: string; role: Role; info: RequestInfo },
): Promise<Result<{ invitationId: string; email: string; emailed: boolean; url: string; expiresAt: number }, InviteFailure>> {
  if (!actor.isAdmin) return fail("forbidden", "Only Account Admins can invite team members.");
  const email = checkEmail(input.email, ctx.config.limits);
  if (!email.ok) return email;
  const existing = await ctx.db
    .selectFrom("memberships")
    .innerJoin("users", "users.id", "memberships.user_id")
    .select("memberships.id")
    .where("memberships.account_id", "=", actor.accountId)
    .where("users.email", "=", email.value)
    .executeTakeFirst();
  if (existing) return fail("already_member", `${email.value} is already a member of this account.`);
  const created = await createInvitation(ctx, {
    accountId: actor.accountId,
    email: email.value,
    role: input.role,
    invitedByUserId: actor.userId,
    ...(actor.token ? { actorToken: actor.token } : {}),
    info: input.info,
    emailAs: actor.name,
  });
  if (!created.ok) return created;
  return ok({
    invitationId: created.value.invitationId,
    email: email.value,
    emailed: true,
    url: created.value.url,
    expiresAt: created.value.expiresAt,
  });
}

/** A new link for an open invitation (the old link stops working), emailed again. */
export async function resendInvitation(
  ctx: AppContext,
  actor: { userId: string; name: string; accountId: string; isAdmin: boolean },
  input: { invitationId: string; info: RequestInfo },
): Promise<Result<{ email: string; emailed: boolean }, "forbidden" | "invitation_not_found" | "email_invalid">> {
  if (!actor.isAdmin) return fail("forbidden", "Only Account Admins can resend invitations.");
  const row = await ctx.db
    .selectFrom("invitations")
    .select(["email", "role"])
    .where("id", "=", input.invitationId)
    .where("account_id", "=", actor.accountId)
    .where("accepted_at", "is", null)
    .where("revoked_at", "is", null)
    .executeTakeFirst();
  if (!row) return fail("invitation_not_found", "There is no open invitation with that id in this account.");
  const created = await createInvitation(ctx, {
    accountId: actor.accountId,
    email: row.email,
    role: row.role,
    invitedByUserId: actor.userId,
    info: input.info,
    emailAs: actor.name,
  });
  if (!created.ok) return created;
  await recordEvent(ctx, {
    type: "invitation.resent",
    accountId: actor.accountId,
    actorUserId: actor.userId,
    info: input.info,
    detail: { email: row.email },
  });
  return ok({ email: row.email, emailed: true });
}

export async function revokeInvitation(
  ctx: AppContext,
  actor: { userId: string; accountId: string; isAdmin: boolean },
  input: { invitationId: string; info: RequestInfo },
): Promise<Result<{ email: string }, "forbidden" | "invitation_not_found">> {
  if (!actor.isAdmin) return fail("forbidden", "Only Account Admins can revoke invitations.");
  const row = await ctx.db
    .selectFrom("invitations")
    .select("email")
    .where("id", "=", input.invitationId)
    .where("account_id", "=", actor.accountId)
    .executeTakeFirst();
  const result = await ctx.db
    .updateTable("invitations")
    .set({ revoked_at: ctx.clock.now() })
    .where("id", "=", input.invitationId)
    .where("account_id", "=", actor.accountId)
    .where("accepted_at", "is", null)
    .where("revoked_at", "is", null)
    .executeTakeFirst();
  if (!row || Number(result.numUpdatedRows) !== 1)
    return fail("invitation_not_found", "There is no open invitation with that id in this account.");
  await recordEvent(ctx, {
    type: "invitation.revoked",
    accountId: actor.accountId,
    actorUserId: actor.userId,
    info: input.info,
    detail: { email: row.email },
  });
  return ok({ email: row.email });
}
