import { withTx, type AppContext, type RequestInfo } from "../context.js";
import { fail, ok, type Result } from "../errors.js";
import { recordEvent } from "../audit/events.js";
import { checkAccountName, checkEmail, checkName } from "../auth/emails.js";
import { checkNewPassword, hashPassword, type PasswordProblem } from "../auth/passwords.js";
import { hashToken, looksLikeToken, newId, newToken } from "../auth/tokens.js";
import { countAccounts } from "./accounts.js";
import { urlTo } from "../paths.js";

/**
 * On an empty database, a one-time link to create the first account and its admin. Each start issues a fresh link
 * and voids the earlier ones, so only the link in the newest log works. Returns null once any account exists.
 */
export async function issueSetupLink(ctx: AppContext): Promise<{ url: string; expiresAt: number } | null> {
  if ((await countAccounts(ctx)) > 0) return null;
  const now = ctx.clock.now();
  const token = newToken();
  const expiresAt = now + ctx.config.limits.setupLinkTtlSeconds * 1000;
  await ctx.db.transaction().execute(async (tx) => {
    await tx.deleteFrom("setup_tokens").where("used_at", "is", null).execute();
    await tx
      .insertInto("setup_tokens")
      .values({ id: newId(), token_hash: hashToken(token), created_at: now, expires_at: expiresAt, used_at: null })
      .execute();
  });
  return { url: urlTo(ctx.config.publicUrl, "setup", { token }), expiresAt };
}

export type SetupFailure = "setup_unavailable" | "account_name_invalid" | "name_invalid" | "email_invalid" | PasswordProblem;

/** True when the link can still create the first account. */
export async function isSetupLinkOpen(ctx: Pick<AppContext, "db" | "clock">, token: string): Promise<boolean> {
  if (!looksLikeToken(token)) return false;
  // The link is for an empty installation only: once an account exists (e.g. made with the CLI) it is void.
  if ((await countAccounts(ctx)) > 0) return false;
  const row = await ctx.db
    .selectFrom("setup_tokens")
    .select(["used_at", "expires_at"])
    .where("token_hash", "=", hashToken(token))
    .executeTakeFirst();
  return row !== undefined && row.used_at === null && row.expires_at > ctx.clock.now();
}

/** Creates the first account and its Account Admin with a password. The link is claimed atomically: it works once. */
export async function completeSetup(
  ctx: AppContext,
  input: { token: string; accountName: string; name: string; email: string; password: string; info: RequestInfo },
): Promise<Result<{ userId: string; accountId: string; email: string }, SetupFailure>> {
  const unavailable = fail(
    "setup_unavailable",
    "This setup link is not valid any more. Restart Latchkey to print a new one, or use `latchkey account create`.",
  );
  if (!(await isSetupLinkOpen(ctx, input.token))) return unavailable;
  const { limits } = ctx.config;
  const accountName = checkAccountName(input.accountName, limits);
  if (!accountName.ok) return accountName;
  const name = checkName(input.name, limits);
  if (!name.ok) return name;
  const email = checkEmail(input.email, limits);
  if (!email.ok) return email;
  const password = checkNewPassword(input.password, limits);
  if (!password.ok) return password;
  const passwordHash = await hashPassword(password.value);
  const now = ctx.clock.now();
  return ctx.db.transaction().execute(async (tx) => {
    const claimed = await tx
      .updateTable("setup_tokens")
      .set({ used_at: now })
      .where("token_hash", "=", hashToken(input.token))
      .where("used_at", "is", null)
      .where("expires_at", ">", now)
      .executeTakeFirst();
    if (Number(claimed.numUpdatedRows) !== 1) return unavailable;
    const accountId = newId();
    const userId = newId();
    await tx
      .insertInto("accounts")
      .values({ id: accountId, name: accountName.value, two_factor_policy: "email_link", created_at: now })
      .execute();
    await tx
      .insertInto("users")
      .values({
        id: userId,
        email: email.value,
        name: name.value,
        password_hash: passwordHash,
        two_factor_method: "email_link",
        created_at: now,
        updated_at: now,
      })
      .execute();
    await tx
      .insertInto("memberships")
      .values({
        id: newId(),
        account_id: accountId,
        user_id: userId,
        role: "admin",
        sign_in_method: "password",
        created_at: now,
        last_sign_in_at: null,
      })
      .execute();
    await recordEvent(withTx(ctx, tx), {
      type: "account.created",
      accountId,
      userId,
      info: input.info,
      detail: { name: accountName.value, via: "setup_link" },
    });
    return ok({ userId, accountId, email: email.value });
  });
}
