import type { AppContext, RequestInfo } from "../context.js";
import type { TwoFactorPolicy } from "../db/schema.js";
import { fail, ok, type Result } from "../errors.js";
import { recordEvent, type TokenActor } from "../audit/events.js";
import { decodeCursor, encodeCursor } from "../audit/log.js";
import { checkAccountName, checkEmail } from "../auth/emails.js";
import { newId } from "../auth/tokens.js";
import { createInvitation } from "./invitations.js";

/**
 * Creates a team account and invites its first Account Admin. Returns the invitation URL: the admin opens it to set
 * a password (or, if they already have a login, to join with it). From the CLI, or from the operator API (`actorToken`),
 * which also emails the invitation (`emailAs`, the name that signs it).
 */
export async function createAccountWithAdmin(
  ctx: AppContext,
  input: { name: string; adminEmail: string; actorToken?: TokenActor; info?: RequestInfo; emailAs?: string },
): Promise<
  Result<
    { accountId: string; name: string; adminEmail: string; invitationUrl: string; expiresAt: number },
    "account_name_invalid" | "email_invalid"
  >
> {
  const name = checkAccountName(input.name, ctx.config.limits);
  if (!name.ok) return name;
  const email = checkEmail(input.adminEmail, ctx.config.limits);
  if (!email.ok) return email;
  const accountId = newId();
  await ctx.db
    .insertInto("accounts")
    .values({ id: accountId, name: name.value, two_factor_policy: "email_link", created_at: ctx.clock.now() })
    .execute();
  const by = { ...(input.actorToken ? { actorToken: input.actorToken } : {}), ...(input.info ? { info: input.info } : {}) };
  await recordEvent(ctx, { type: "account.created", accountId, ...by, detail: { name: name.value, adminEmail: email.value } });
  const invitation = await createInvitation(ctx, {
    accountId,
    email: email.value,
    role: "admin",
    invitedByUserId: null,
    ...by,
    ...(input.emailAs !== undefined ? { emailAs: input.emailAs } : {}),
  });
  if (!invitation.ok) return fail("email_invalid", invitation.message);
  return ok({
    accountId,
    name: name.value,
    adminEmail: email.value,
    invitationUrl: invitation.value.url,
    expiresAt: invitation.value.expiresAt,
  });
}

export interface AccountSummary {
  id: string;
  name: string;
  twoFactorPolicy: TwoFactorPolicy;
  createdAt: number;
  members: number;
}

/**
 * Every account, oldest first, a page at a time (the operator API). The cursor is the audit log's opaque (time, id)
 * cursor, so accounts created while someone pages through appear at the end, none twice. Null when the cursor is not
 * one we made.
 */
export async function listAccounts(
  ctx: Pick<AppContext, "db">,
  query: { cursor?: string | undefined; limit: number },
): Promise<{ accounts: AccountSummary[]; nextCursor: string | null } | null> {
  const cursor = query.cursor === undefined ? null : decodeCursor(query.cursor);
  if (query.cursor !== undefined && !cursor) return null;
  let q = ctx.db.selectFrom("accounts as a").select((eb) => [
    "a.id",
    "a.name",
    "a.two_factor_policy",
    "a.created_at",
    eb
      .selectFrom("memberships as m")
      .select((m) => m.fn.countAll<number>().as("n"))
      .whereRef("m.account_id", "=", "a.id")
      .as("members"),
  ]);
  if (cursor)
    q = q.where((eb) =>
      eb.or([eb("a.created_at", ">", cursor.at), eb.and([eb("a.created_at", "=", cursor.at), eb("a.id", ">", cursor.id)])]),
    );
  const rows = await q
    .orderBy("a.created_at", "asc")
    .orderBy("a.id", "asc")
    .limit(query.limit + 1)
    .execute();
  const page = rows.slice(0, query.limit);
  const last = page[page.length - 1];
  return {
    accounts: page.map((r) => ({
      id: r.id,
      name: r.name,
      twoFactorPolicy: r.two_factor_policy,
      createdAt: r.created_at,
      members: Number(r.members ?? 0),
    })),
    nextCursor: rows.length > query.limit && last ? encodeCursor(last.created_at, last.id) : null,
  };
}

/** One account by id, or null. */
export async function findAccount(
  ctx: Pick<AppContext, "db">,
  accountId: string,
): Promise<{ id: string; name: string; twoFactorPolicy: TwoFactorPolicy; createdAt: number } | null> {
  const row = await ctx.db
    .selectFrom("accounts")
    .select(["id", "name", "two_factor_policy", "created_at"])
    .where("id", "=", accountId)
    .executeTakeFirst();
  return row ? { id: row.id, name: row.name, twoFactorPolicy: row.two_factor_policy, createdAt: row.created_at } : null;
}

export async function countAccounts(ctx: Pick<AppContext, "db">): Promise<number> {
  const row = await ctx.db
    .selectFrom("accounts")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
