import { withTx, type AppContext } from "../context.js";
import { fail, ok, type Result } from "../errors.js";
import { recordEvent } from "../audit/events.js";
import { checkIssuerUrl, discoverProvider } from "../auth/oidc.js";
import { clientSecretBox, normalizeDomain, ssoRedirectUri } from "../auth/sso-sign-in.js";

/**
 * Single sign-on administration, per account: an operator connects one OpenID Connect provider and names the email
 * domains whose people sign in through it (`latchkey sso connect|show|disconnect`). The sign-in itself is in
 * auth/sso-sign-in.ts.
 */

export interface SsoConnectionView {
  accountId: string;
  accountName: string;
  issuer: string;
  clientId: string;
  domains: string[];
  redirectUri: string;
  createdAt: number;
  updatedAt: number;
  ssoMembers: number;
}

export type ConnectFailure = "invalid_request" | "not_found" | "sso_domain_taken" | "sso_unavailable";

/**
 * Connects (or reconnects) an account's OpenID provider. The issuer is discovered first, so a typo or an unreachable
 * provider is reported now rather than at someone's first sign-in. Domains are claimed for this account only: a
 * domain another account uses is refused.
 */
export async function connectSso(
  ctx: AppContext,
  input: { accountId: string; issuer: string; clientId: string; clientSecret: string; domains: string[] },
): Promise<Result<SsoConnectionView, ConnectFailure>> {
  const { limits } = ctx.config;
  const account = await ctx.db.selectFrom("accounts").select(["id", "name"]).where("id", "=", input.accountId).executeTakeFirst();
  if (!account) return fail("not_found", `There is no account with the id ${input.accountId}.`);
  const issuer = checkIssuerUrl(input.issuer);
  if (!issuer.ok) return issuer;
  const clientId = input.clientId.trim();
  if (clientId.length === 0 || clientId.length > 512 || /\p{Cc}/u.test(clientId))
    return fail("invalid_request", "The client id must be 1 to 512 characters without control characters.");
  if (input.clientSecret.length === 0 || input.clientSecret.length > 4096)
    return fail("invalid_request", "The client secret must be 1 to 4096 characters.");
  const domains: string[] = [];
  for (const raw of input.domains) {
    const domain = normalizeDomain(raw);
    if (domain === null) return fail("invalid_request", `"${raw.slice(0, 100)}" is not a domain name like example.com.`);
    if (!domains.includes(domain)) domains.push(domain);
  }
  if (domains.length === 0)
    return fail("invalid_request", "Name at least one email domain (e.g. --domain example.com) whose people sign in with this provider.");
  if (domains.length > limits.ssoMaxDomains) return fail("invalid_request", `At most ${limits.ssoMaxDomains} domains per account.`);

  try {
    await discoverProvider({
      issuer: issuer.value,
      clientId,
      clientSecret: input.clientSecret,
      timeoutSeconds: limits.ssoHttpTimeoutSeconds,
    });
  } catch (error) {
    const text = error instanceof Error ? error.message : String(error);
    return fail(
      "sso_unavailable",
      `Could not read the OpenID configuration of ${issuer.value} (${text.slice(0, 200)}). Check the issuer URL: ${new URL(".well-known/openid-configuration", issuer.value.endsWith("/") ? issuer.value : `${issuer.value}/`).href} must answer.`,
    );
  }

  const now = ctx.clock.now();
  const sealed = clientSecretBox(ctx).seal(input.clientSecret, account.id);
  const result = await ctx.db.transaction().execute(async (tx) => {
    const taken = await tx
      .selectFrom("sso_domains")
      .select(["domain"])
      .where("domain", "in", domains)
      .where("account_id", "!=", account.id)
      .executeTakeFirst();
    if (taken)
      return fail(
        "sso_domain_taken",
        `The domain ${taken.domain} already leads to another account's single sign-on. A domain can belong to one account only.`,
      );
    const existing = await tx.selectFrom("sso_connections").select("account_id").where("account_id", "=", account.id).executeTakeFirst();
    if (existing) {
      await tx
        .updateTable("sso_connections")
        .set({ issuer: issuer.value, client_id: clientId, client_secret_sealed: sealed, updated_at: now })
        .where("account_id", "=", account.id)
        .execute();
      await tx.deleteFrom("sso_domains").where("account_id", "=", account.id).execute();
    } else {
      await tx
        .insertInto("sso_connections")
        .values({
          account_id: account.id,
          issuer: issuer.value,
          client_id: clientId,
          client_secret_sealed: sealed,
          created_at: now,
          updated_at: now,
        })
        .execute();
    }
    await tx
      .insertInto("sso_domains")
      .values(domains.map((domain) => ({ domain, account_id: account.id })))
      .execute();
    await recordEvent(withTx(ctx, tx), {
      type: "sso.connected",
      accountId: account.id,
      detail: { issuer: issuer.value, clientId, domains, replaced: existing !== undefined },
    });
    return ok(null);
  });
  if (!result.ok) return result;
  const view = await showSso(ctx, account.id);
  return view ? ok(view) : fail("not_found", `There is no account with the id ${input.accountId}.`);
}

/** The account's connection as an operator or admin sees it (never the client secret), or null when there is none. */
export async function showSso(ctx: Pick<AppContext, "db" | "config">, accountId: string): Promise<SsoConnectionView | null> {
  const row = await ctx.db
    .selectFrom("sso_connections")
    .innerJoin("accounts", "accounts.id", "sso_connections.account_id")
    .select([
      "sso_connections.account_id",
      "accounts.name",
      "sso_connections.issuer",
      "sso_connections.client_id",
      "sso_connections.created_at",
      "sso_connections.updated_at",
    ])
    .where("sso_connections.account_id", "=", accountId)
    .executeTakeFirst();
  if (!row) return null;
  const domains = await ctx.db.selectFrom("sso_domains").select("domain").where("account_id", "=", accountId).orderBy("domain").execute();
  const members = await ctx.db
    .selectFrom("memberships")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("account_id", "=", accountId)
    .where("sign_in_method", "=", "sso")
    .executeTakeFirstOrThrow();
  return {
    accountId: row.account_id,
    accountName: row.name,
    issuer: row.issuer,
    clientId: row.client_id,
    domains: domains.map((d) => d.domain),
    redirectUri: ssoRedirectUri(ctx),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    ssoMembers: Number(members.n),
  };
}

/**
 * Disconnects the account's provider: its domains lead nowhere, sign-ins in flight die, and the SSO members' open
 * sessions in this account end at once. Their memberships stay (listed as SSO), so reconnecting lets them back in;
 * an admin removes them to let them go.
 */
export async function disconnectSso(
  ctx: AppContext,
  input: { accountId: string },
): Promise<Result<{ sessionsEnded: number }, "sso_not_configured">> {
  return ctx.db.transaction().execute(async (tx) => {
    const deleted = await tx.deleteFrom("sso_connections").where("account_id", "=", input.accountId).executeTakeFirst();
    if (Number(deleted.numDeletedRows) === 0)
      return fail("sso_not_configured", `The account ${input.accountId} has no single sign-on connection.`);
    // Domains go with the connection (foreign key); deleted explicitly too, so SQLite without enforced keys agrees.
    await tx.deleteFrom("sso_domains").where("account_id", "=", input.accountId).execute();
    await tx.deleteFrom("sso_logins").where("account_id", "=", input.accountId).execute();
    const ended = await tx
      .deleteFrom("sessions")
      .where("account_id", "=", input.accountId)
      .where("user_id", "in", (eb) =>
        eb.selectFrom("memberships").select("user_id").where("account_id", "=", input.accountId).where("sign_in_method", "=", "sso"),
      )
      .executeTakeFirst();
    await recordEvent(withTx(ctx, tx), {
      type: "sso.disconnected",
      accountId: input.accountId,
      detail: { sessionsEnded: Number(ended.numDeletedRows) },
    });
    return ok({ sessionsEnded: Number(ended.numDeletedRows) });
  });
}
