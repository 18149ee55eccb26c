import { domainToASCII } from "node:url";
import { withTx, type AppContext, type RequestInfo } from "../context.js";
import { fail, ok, type Result } from "../errors.js";
import { recordEvent } from "../audit/events.js";
import { urlTo } from "../paths.js";
import { checkEmail, checkName, cleanProviderName } from "./emails.js";
import { countSignIn } from "../observability/metrics.js";
import { buildAuthorizationRequest, completeAuthorization, describeOidcError, discoverProvider, type OidcIdentity } from "./oidc.js";
import { createSecretBox, type SecretBox } from "./secret-box.js";
import { constantTimeEqual, hashToken, looksLikeToken, newId, newToken } from "./tokens.js";
import { completeSignIn } from "./sign-in-finish.js";

/**
 * "Sign in with SSO": the sign-in half of single sign-on with OpenID Connect. An account's connection (administered
 * in team/sso.ts) names a provider and the email domains whose people sign in through it. The flow is found by the
 * email DOMAIN only (never by looking up a person), and the person who comes back is provisioned just in time as an
 * SSO member: no Latchkey password, no Latchkey second factor, untouched by the two-factor policy.
 */

export const clientSecretBox = (ctx: Pick<AppContext, "config">): SecretBox =>
  createSecretBox(ctx.config.secretKey, ctx.config.previousSecretKeys, "sso-client-secret");
const verifierBox = (ctx: Pick<AppContext, "config">): SecretBox =>
  createSecretBox(ctx.config.secretKey, ctx.config.previousSecretKeys, "sso-code-verifier");

/** The one redirect URI Latchkey uses: register it at the provider. Built from the public URL, never from a request. */
export function ssoRedirectUri(ctx: Pick<AppContext, "config">): string {
  return urlTo(ctx.config.publicUrl, "ssoCallback");
}

/**
 * A domain as stored and compared: what follows the last "@" (so a whole email address may be given), trimmed,
 * lower-cased, without a trailing dot, internationalised names in their ASCII (punycode) form. Null when it is no
 * domain name.
 */
export function normalizeDomain(input: string): string | null {
  const afterAt = input
    .slice(input.lastIndexOf("@") + 1)
    .trim()
    .toLowerCase()
    .replace(/\.$/, "");
  if (afterAt.length === 0 || afterAt.length > 253 || /[\s/\\?#:\p{Cc}]/u.test(afterAt)) return null;
  const ascii = domainToASCII(afterAt);
  if (!/^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$/.test(ascii)) return null;
  return ascii;
}

interface ProviderSettings {
  accountId: string;
  issuer: string;
  clientId: string;
  clientSecret: string;
  domains: string[];
}

async function providerOf(ctx: Pick<AppContext, "db" | "config">, accountId: string): Promise<ProviderSettings | null> {
  const row = await ctx.db.selectFrom("sso_connections").selectAll().where("account_id", "=", accountId).executeTakeFirst();
  if (!row) return null;
  const domains = await ctx.db.selectFrom("sso_domains").select("domain").where("account_id", "=", accountId).execute();
  return {
    accountId,
    issuer: row.issuer,
    clientId: row.client_id,
    clientSecret: clientSecretBox(ctx).open(row.client_secret_sealed, accountId),
    domains: domains.map((d) => d.domain),
  };
}

export type StartFailure = "invalid_request" | "sso_not_configured" | "sso_unavailable";

/**
 * Starts "Sign in with SSO" for a work email or a domain. Only the domain is used (anything up to the "@" is dropped
 * unread), so this never tells whether a person has a login. Returns the provider's authorization URL and a random
 * browser token for the `latchkey_sso` cookie: the callback is accepted only together with that cookie.
 */
export async function startSsoSignIn(
  ctx: AppContext,
  input: { domainOrEmail: string; info: RequestInfo },
): Promise<Result<{ authorizationUrl: string; browserToken: string; accountId: string; domain: string }, StartFailure>> {
  const domain = normalizeDomain(input.domainOrEmail);
  if (domain === null) return fail("invalid_request", "Enter your work email address or its domain, like example.com.");
  const found = await ctx.db.selectFrom("sso_domains").select("account_id").where("domain", "=", domain).executeTakeFirst();
  const provider = found ? await providerOf(ctx, found.account_id) : null;
  if (!provider)
    return fail(
      "sso_not_configured",
      `No single sign-on is set up for ${domain}. Sign in with your email and password, or ask your administrator.`,
    );

  const { limits } = ctx.config;
  let request;
  try {
    const configuration = await discoverProvider({ ...provider, timeoutSeconds: limits.ssoHttpTimeoutSeconds });
    request = await buildAuthorizationRequest(configuration, { redirectUri: ssoRedirectUri(ctx), state: newToken() });
  } catch (error) {
    return fail("sso_unavailable", describeOidcError(error, "discovery").message);
  }
  const now = ctx.clock.now();
  const browserToken = newToken();
  const stateHash = hashToken(request.state);
  // Expired rows are deleted by housekeeping, a day after they expired, so "expired" answers stay precise till then.
  await ctx.db
    .insertInto("sso_logins")
    .values({
      state_hash: stateHash,
      browser_hash: hashToken(browserToken),
      account_id: provider.accountId,
      code_verifier_sealed: verifierBox(ctx).seal(request.codeVerifier, stateHash),
      nonce: request.nonce,
      created_at: now,
      expires_at: now + limits.ssoLoginTtlSeconds * 1000,
      used_at: null,
      ip: input.info.ip,
      user_agent: input.info.userAgent?.slice(0, 512) ?? null,
    })
    .execute();
  return ok({ authorizationUrl: request.url, browserToken, accountId: provider.accountId, domain });
}

export type FinishFailure =
  | "wrong_browser"
  | "sso_state_invalid"
  | "sso_state_used"
  | "sso_state_expired"
  | "sso_not_configured"
  | "sso_failed"
  | "sso_password_member"
  | "sso_unavailable";

export interface SsoSignedIn {
  sessionToken: string;
  userId: string;
  accountId: string;
  /** The member was created just now (just-in-time provisioning). */
  provisioned: boolean;
  /** The person signs in with SSO to several accounts and picks one. */
  chooseAccount: boolean;
}

/**
 * The provider's redirect back (`/sso/callback?code=…&state=…`). In order: the state must be known, unused and
 * unexpired, and come back to the browser that started it (the cookie; otherwise nothing is spent). Then the state
 * is claimed by a guarded UPDATE (exactly one of parallel callbacks goes on), the code exchanged and the ID token
 * verified, the email required verified and inside the connection's domains, the member found or provisioned, and
 * the session created — with no Latchkey second factor.
 */
async function ssoCallback(
  ctx: AppContext,
  input: { callbackPath: string; browserToken: string | undefined; info: RequestInfo },
): Promise<Result<SsoSignedIn, FinishFailure>> {
  const callbackUrl = new URL(input.callbackPath, ctx.config.publicUrl);
  const state = callbackUrl.searchParams.get("state");
  const restart = "Start again from “Sign in with SSO”.";
  if (!looksLikeToken(state)) return fail("sso_state_invalid", `This single sign-on answer is not valid. ${restart}`);
  const stateHash = hashToken(state);
  const now = ctx.clock.now();
  const login = await ctx.db.selectFrom("sso_logins").selectAll().where("state_hash", "=", stateHash).executeTakeFirst();
  if (!login) return fail("sso_state_invalid", `This single sign-on answer is not valid or has been cleared. ${restart}`);
  if (login.used_at !== null) return fail("sso_state_used", `This single sign-on answer was already used. ${restart}`);
  if (login.expires_at <= now) return fail("sso_state_expired", `This single sign-on took too long and has expired. ${restart}`);
  if (input.browserToken === undefined || !constantTimeEqual(hashToken(input.browserToken), login.browser_hash)) {
    await recordEvent(ctx, {
      type: "sign_in.sso_failed",
      accountId: login.account_id,
      info: input.info,
      detail: { reason: "wrong_browser" },
    });
    return fail(
      "wrong_browser",
      "Finish single sign-on in the browser where you started it. Start again from “Sign in with SSO” in this browser.",
    );
  }
  const claimed = await ctx.db
    .updateTable("sso_logins")
    .set({ used_at: now })
    .where("state_hash", "=", stateHash)
    .where("used_at", "is", null)
    .where("expires_at", ">", now)
    .executeTakeFirst();
  if (Number(claimed.numUpdatedRows) !== 1) return fail("sso_state_used", `This single sign-on answer was already used. ${restart}`);

  const refuse = async (
    reason: FinishFailure,
    message: string,
    detail: Record<string, unknown> = {},
  ): Promise<Result<SsoSignedIn, FinishFailure>> => {
    await recordEvent(ctx, { type: "sign_in.sso_failed", accountId: login.account_id, info: input.info, detail: { reason, ...detail } });
    return fail(reason, message);
  };

  const provider = await providerOf(ctx, login.account_id);
  if (!provider) return refuse("sso_not_configured", "Single sign-on is no longer set up for this account. Ask your administrator.");
  const timeoutSeconds = ctx.config.limits.ssoHttpTimeoutSeconds;
  let configuration;
  try {
    configuration = await discoverProvider({ ...provider, timeoutSeconds });
  } catch (error) {
    const problem = describeOidcError(error, "discovery");
    return refuse("sso_unavailable", problem.message);
  }
  let identity: OidcIdentity;
  try {
    identity = await completeAuthorization(configuration, {
      callbackUrl,
      state,
      nonce: login.nonce,
      codeVerifier: verifierBox(ctx).open(login.code_verifier_sealed, stateHash),
    });
  } catch (error) {
    const problem = describeOidcError(error, "exchange");
    return refuse(problem.kind === "unavailable" ? "sso_unavailable" : "sso_failed", problem.message);
  }

  if (identity.email === undefined)
    return refuse(
      "sso_failed",
      "Your identity provider did not tell us your email address, so we cannot sign you in. Ask your administrator to release the email claim.",
    );
  // The same check as every address typed in Latchkey: one spelling per mailbox (no trailing dot, the domain as a
  // hostname reads it), and no control character (NUL above all: PostgreSQL refuses it, a 500).
  const checked = checkEmail(identity.email, ctx.config.limits);
  if (!checked.ok) {
    return refuse(
      "sso_failed",
      "Your identity provider sent an email address that is not valid, so we cannot sign you in. Ask your administrator.",
      { problem: checked.message },
    );
  }
  const email = checked.value;
  if (identity.emailVerified !== true)
    return refuse("sso_failed", `Your identity provider has not verified the address ${email}, so we cannot sign you in with it.`, {
      email,
    });
  // The domain of the address as stored, so the check and the stored address cannot disagree.
  const domain = normalizeDomain(email);
  if (domain === null || !provider.domains.includes(domain)) {
    return refuse(
      "sso_failed",
      `The address ${email} is not in a domain this account's single sign-on covers (${provider.domains.join(", ")}).`,
      { email },
    );
  }
  // Bidi controls and zero-width characters are taken out rather than refused: the provider's value is not typed here.
  const name = checkName(cleanProviderName(identity.name ?? ""), ctx.config.limits);
  const displayName = name.ok ? name.value : (email.split("@")[0] ?? email);

  const outcome = await ctx.db.transaction().execute(async (tx) => {
    await tx
      .insertInto("users")
      .values({
        id: newId(),
        email,
        name: displayName,
        password_hash: null,
        two_factor_method: "email_link",
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) => oc.column("email").doNothing())
      .execute();
    const user = await tx.selectFrom("users").select(["id"]).where("email", "=", email).executeTakeFirstOrThrow();
    const membership = await tx
      .selectFrom("memberships")
      .select(["id", "sign_in_method"])
      .where("account_id", "=", provider.accountId)
      .where("user_id", "=", user.id)
      .executeTakeFirst();
    if (membership?.sign_in_method === "password") return { refused: true as const, userId: user.id };
    let provisioned = false;
    if (!membership) {
      const inserted = await tx
        .insertInto("memberships")
        .values({
          id: newId(),
          account_id: provider.accountId,
          user_id: user.id,
          role: "member",
          sign_in_method: "sso",
          created_at: now,
          last_sign_in_at: null,
        })
        .onConflict((oc) => oc.columns(["account_id", "user_id"]).doNothing())
        .executeTakeFirst();
      provisioned = Number(inserted.numInsertedOrUpdatedRows ?? 0n) === 1;
      if (provisioned) {
        await recordEvent(withTx(ctx, tx), {
          type: "sso.member_provisioned",
          accountId: provider.accountId,
          userId: user.id,
          info: input.info,
          detail: { email, subject: identity.subject },
        });
      }
    }
    const signedIn = await completeSignIn(ctx, tx, {
      userId: user.id,
      accountId: provider.accountId,
      proof: "sso",
      info: input.info,
      upstreamAmr: identity.amr,
    });
    return { refused: false as const, signedIn, provisioned };
  });
  if (outcome.refused) {
    return refuse(
      "sso_password_member",
      `${email} is already a member of this account who signs in with a password. To sign in with single sign-on instead, an Account Admin must first remove this member; the next SSO sign-in then adds them back.`,
      { email },
    );
  }
  return ok({ ...outcome.signedIn, provisioned: outcome.provisioned });
}

/** The provider's redirect back (`ssoCallback` above), counted in the metrics as an `sso` sign-in step. */
export function finishSsoSignIn(ctx: AppContext, input: Parameters<typeof ssoCallback>[1]): ReturnType<typeof ssoCallback> {
  return countSignIn(ctx.metrics, "sso", ssoCallback(ctx, input));
}
