import { withTx, type AppContext, type RequestInfo } from "../context.js";
import type { Role } from "../db/schema.js";
import { fail, ok, type Result } from "../errors.js";
import { recordEvent, type TokenActor } from "../audit/events.js";
import type { SignedIn } from "../auth/sessions.js";
import { memberRemovedMessage } from "../mail/messages.js";
import { queueMail } from "../mail/queue.js";

export interface TeamMember {
  userId: string;
  name: string;
  email: string;
  role: Role;
  /** What the Team Members page shows: SSO members have no Latchkey second factor. */
  method: "email_link" | "auth_app" | "sso";
  lastSignInAt: number | null;
  joinedAt: number;
  /** When the member last changed their email address (the audit log has from and to); null if never. */
  emailChangedAt: number | null;
}

/** A page of a list: `limit` rows after the first `offset`. */
export interface ListPage {
  limit: number;
  offset: number;
}

/** The account's members by name then email: all of them, or one page. */
export async function listTeamMembers(ctx: Pick<AppContext, "db" | "dialect">, accountId: string, page?: ListPage): Promise<TeamMember[]> {
  const columns = [
    "users.id",
    "users.name",
    "users.email",
    "users.two_factor_method",
    "users.email_changed_at",
    "memberships.role",
    "memberships.sign_in_method",
    "memberships.last_sign_in_at",
    "memberships.created_at",
  ] as const;
  const members = ctx.db.selectFrom("memberships").where("memberships.account_id", "=", accountId);
  // PostgreSQL, with its default cost settings (random_page_cost 4, made for spinning disks), hash-joins a big
  // account's members against a sequential scan of every user: 24 ms for 1,000 members among 100,000 users, where
  // one primary-key look-up per member takes 4 ms. A LATERAL subquery with LIMIT 1 cannot be flattened into that
  // join, so each member's user is read by its key whatever the settings (issue 10). SQLite plans the plain join
  // that way by itself, and has no LATERAL.
  const rows = await (
    ctx.dialect === "postgres"
      ? members.innerJoinLateral(
          (eb) => eb.selectFrom("users").selectAll().whereRef("users.id", "=", "memberships.user_id").limit(1).as("users"),
          (join) => join.onTrue(),
        )
      : members.innerJoin("users", "users.id", "memberships.user_id")
  )
    .select(columns)
    .orderBy("users.name")
    .orderBy("users.email")
    .$if(page !== undefined, (q) => q.limit(page?.limit ?? 0).offset(page?.offset ?? 0))
    .execute();
  return rows.map((r) => ({
    userId: r.id,
    name: r.name,
    email: r.email,
    role: r.role,
    method: r.sign_in_method === "sso" ? "sso" : r.two_factor_method,
    lastSignInAt: r.last_sign_in_at,
    joinedAt: r.created_at,
    emailChangedAt: r.email_changed_at,
  }));
}

/** How many members the account has, and how many of them are admins (one read, for a page of the list). */
export async function countTeamMembers(ctx: Pick<AppContext, "db">, accountId: string): Promise<{ total: number; admins: number }> {
  const row = await ctx.db
    .selectFrom("memberships")
    .select((eb) => [
      eb.fn.countAll<number>().as("total"),
      eb.fn.sum<number>(eb.case().when("role", "=", "admin").then(1).else(0).end()).as("admins"),
    ])
    .where("account_id", "=", accountId)
    .executeTakeFirstOrThrow();
  return { total: Number(row.total), admins: Number(row.admins ?? 0) };
}

export type MemberFailure = "forbidden" | "member_not_found" | "last_admin";

function requireAdmin(actor: SignedIn): Result<null, "forbidden"> {
  return actor.role === "admin" ? ok(null) : fail("forbidden", "Only Account Admins can manage team members.");
}

/**
 * Changes a member's role. The last admin cannot be demoted: the guard counts admins inside the same transaction as
 * the change (and on PostgreSQL locks the account's admin rows), so two admins demoting each other cannot both win.
 */
export async function changeRole(
  ctx: AppContext,
  actor: SignedIn,
  input: { userId: string; role: Role; info: RequestInfo },
): Promise<Result<null, MemberFailure>> {
  const allowed = requireAdmin(actor);
  if (!allowed.ok) return allowed;
  const accountId = actor.account.id;
  return ctx.db.transaction().execute(async (tx) => {
    let admins = tx.selectFrom("memberships").select(["user_id"]).where("account_id", "=", accountId).where("role", "=", "admin");
    if (ctx.dialect === "postgres") admins = admins.forUpdate();
    const adminIds = (await admins.execute()).map((r) => r.user_id);
    const member = await tx
      .selectFrom("memberships")
      .select(["id", "role"])
      .where("account_id", "=", accountId)
      .where("user_id", "=", input.userId)
      .executeTakeFirst();
    if (!member) return fail("member_not_found", "There is no such member in this account.");
    if (member.role === input.role) return ok(null);
    if (member.role === "admin" && adminIds.length <= 1)
      return fail("last_admin", "This is the account's only Account Admin. Make someone else an admin first.");
    await tx.updateTable("memberships").set({ role: input.role }).where("id", "=", member.id).execute();
    await recordEvent(withTx(ctx, tx), {
      type: "member.role_changed",
      accountId,
      userId: input.userId,
      actorUserId: actor.user.id,
      info: input.info,
      detail: { from: member.role, to: input.role },
    });
    return ok(null);
  });
}

/**
 * Removes a member from the account and signs them out of it at once (their sessions for it are deleted, so their
 * next request on any instance is refused). When it was their only account, the login itself is deleted —
 * password, auth app, recovery codes — so re-adding them starts from a new invitation, as the seed promises. When
 * they still belong to another account, their credentials stay: one account's admin never controls another's.
 */
export async function removeMember(
  ctx: AppContext,
  actor: SignedIn,
  input: { userId: string; info: RequestInfo },
): Promise<Result<{ loginDeleted: boolean; email: string }, MemberFailure>> {
  const allowed = requireAdmin(actor);
  if (!allowed.ok) return allowed;
  return removeFromAccount(ctx, actor.account, { actorUserId: actor.user.id }, input);
}

/**
 * The removal itself, once the remover is known to be allowed: an Account Admin of the account (`removeMember`), or
 * the operator through an API token (`by.actorToken`). The same rules for both, the last-admin guard included.
 */
export async function removeFromAccount(
  ctx: AppContext,
  account: { id: string; name: string },
  by: { actorUserId: string } | { actorToken: TokenActor },
  input: { userId: string; info: RequestInfo },
): Promise<Result<{ loginDeleted: boolean; email: string }, "member_not_found" | "last_admin">> {
  const accountId = account.id;
  return ctx.db.transaction().execute(async (tx) => {
    let admins = tx.selectFrom("memberships").select(["user_id"]).where("account_id", "=", accountId).where("role", "=", "admin");
    if (ctx.dialect === "postgres") admins = admins.forUpdate();
    const adminIds = (await admins.execute()).map((r) => r.user_id);
    const member = await tx
      .selectFrom("memberships")
      .innerJoin("users", "users.id", "memberships.user_id")
      .select(["memberships.id", "memberships.role", "users.email"])
      .where("memberships.account_id", "=", accountId)
      .where("memberships.user_id", "=", input.userId)
      .executeTakeFirst();
    if (!member) return fail("member_not_found", "There is no such member in this account.");
    if (member.role === "admin" && adminIds.length <= 1)
      return fail("last_admin", "This is the account's only Account Admin and cannot be removed. Make someone else an admin first.");
    await tx.deleteFrom("memberships").where("id", "=", member.id).execute();
    await tx.deleteFrom("sessions").where("user_id", "=", input.userId).where("account_id", "=", accountId).execute();
    await tx
      .updateTable("invitations")
      .set({ revoked_at: ctx.clock.now() })
      .where("account_id", "=", accountId)
      .where("email", "=", member.email)
      .where("accepted_at", "is", null)
      .where("revoked_at", "is", null)
      .execute();
    const others = await tx.selectFrom("memberships").select("id").where("user_id", "=", input.userId).executeTakeFirst();
    // No account left: delete the login; foreign keys remove its sessions, challenges, codes and setups with it.
    if (!others) await tx.deleteFrom("users").where("id", "=", input.userId).execute();
    const txCtx = withTx(ctx, tx);
    await recordEvent(txCtx, {
      type: "member.removed",
      accountId,
      userId: input.userId,
      ...by,
      info: input.info,
      detail: { email: member.email, loginDeleted: !others },
    });
    await queueMail(
      txCtx,
      memberRemovedMessage({
        to: member.email,
        productName: ctx.config.productName,
        accountName: account.name,
        loginDeleted: !others,
        ...("actorToken" in by ? { removedBy: ctx.config.productName } : {}),
      }),
    );
    return ok({ loginDeleted: !others, email: member.email });
  });
}

/** A member as the "Remove …?" page shows them, and whether they belong to other accounts (their login then stays). */
export async function memberForRemoval(
  ctx: Pick<AppContext, "db" | "dialect">,
  accountId: string,
  userId: string,
): Promise<{ member: TeamMember; otherAccounts: boolean } | null> {
  const member = (await listTeamMembers(ctx, accountId)).find((m) => m.userId === userId);
  if (!member) return null;
  const other = await ctx.db
    .selectFrom("memberships")
    .select("id")
    .where("user_id", "=", userId)
    .where("account_id", "!=", accountId)
    .executeTakeFirst();
  return { member, otherAccounts: other !== undefined };
}
