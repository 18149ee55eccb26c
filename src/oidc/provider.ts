import { hkdfSync } from "node:crypto";
import type * as OidcProviderModule from "oidc-provider";
import type { ClientInstance, KoaContextWithOIDC, Provider, SessionInstance, TokenInstance } from "oidc-provider";
import type { AppContext, RequestInfo } from "../context.js";
import { pathTo, routes } from "../paths.js";
import { adapterFactory } from "./adapter.js";
import { ACR_VALUES, CLAIMS_BY_SCOPE, SCOPES, claimsOf, isAcr } from "./claims.js";
import { secretMatches } from "./clients.js";
import { latchkeyResultOf, liveGrant, loadGrantFor, touchSession } from "./grants.js";
import type { KeySet } from "./keys.js";
import type { OidcLogger } from "./logout.js";

/**
 * The OpenID Provider: oidc-provider (the certified library) configured from an AppContext. No HTTP server here: the
 * HTTP layer hands it the requests for its paths (src/http/routes/oidc.ts) and draws its few pages.
 *
 * - Issuer: the public origin; every endpoint under /oidc/, discovery at /.well-known/openid-configuration.
 * - Code flow only, PKCE (S256) required of every client, refresh tokens rotated at each use (a reused one revokes
 *   the whole grant), userinfo, revocation and introspection (a client sees only its own tokens), RP-initiated logout
 *   (which also signs the browser out of Latchkey) and back-channel logout.
 * - Lifetimes: codes 1 min, access and ID tokens 10 min, the sign-in 30 min; grants, refresh tokens and the
 *   provider's own session last as long as a Latchkey session can, and in fact end with it (grants.ts).
 * - Every authorization passes through Latchkey's sign-in (interaction.ts): the provider's own login state is never
 *   enough, so `prompt=none` is answered `login_required`.
 * - Cookies are signed with keys derived (HKDF) from the secret key, so every instance reads every other's.
 */

/** The pages the provider draws itself, drawn by the HTTP layer in Latchkey's look. */
export interface OidcPages {
  /** "Sign out?" for a client's logout request; `form` is the provider's hidden form the buttons submit. */
  logout(input: { form: string; clientName: string | undefined }): string;
  /** After a client's logout without a return address. */
  loggedOut(input: { clientName: string | undefined }): string;
  /** An error the provider cannot send back to a client (unknown client, wrong redirect URI …). */
  error(input: { error: string; description: string | undefined }): string;
}

export interface OidcBridge {
  pages: OidcPages;
  log: OidcLogger;
  /**
   * The person confirmed a client's logout: ends the Latchkey session of the browser (given its Cookie header) and
   * returns the Set-Cookie values that clear it.
   */
  endBrowserSession(cookieHeader: string | undefined, info: RequestInfo): Promise<string[]>;
  /** Something ended a Latchkey session: tell the clients soon. */
  requestSweep(): void;
}

/** The provider's endpoint paths (relative to the issuer, which has no path), from the one route table. */
export const providerRoutes = {
  authorization: routes.oidcAuthorization,
  token: routes.oidcToken,
  userinfo: routes.oidcUserinfo,
  jwks: routes.oidcJwks,
  end_session: routes.oidcEndSession,
  introspection: routes.oidcIntrospection,
  revocation: routes.oidcRevocation,
} as const;

/** The library, loaded once, when the first provider is built (see `loadOidcProvider`). */
export type OidcModule = typeof OidcProviderModule;

let loaded: Promise<OidcModule> | undefined;

/**
 * Loads oidc-provider. It is loaded only by the server, when the first provider is built, not by every CLI command.
 * oidc-provider 9 says at import that it supports Node.js 22 and later ("Unsupported runtime" on stderr); Latchkey
 * runs it on Node.js 20, where its whole test suite passes, so that one line is dropped rather than printed at every
 * start. Nothing else it prints is touched.
 */
export function loadOidcProvider(): Promise<OidcModule> {
  loaded ??= (async () => {
    const warn = console.warn;
    console.warn = (...args: unknown[]): void => {
      if (typeof args[0] === "string" && args[0].includes("Unsupported runtime")) return;
      warn(...args);
    };
    try {
      return await import("oidc-provider");
    } finally {
      console.warn = warn;
    }
  })();
  return loaded;
}

/** HMAC keys for the provider's signed cookies: derived from the secret key, the current one first (keygrip signs with it). */
function cookieKeys(ctx: Pick<AppContext, "config">): string[] {
  return [ctx.config.secretKey, ...ctx.config.previousSecretKeys].map((key) =>
    Buffer.from(hkdfSync("sha256", key, Buffer.alloc(0), "latchkey:oidc-cookies", 32)).toString("base64url"),
  );
}

/** A client may introspect or revoke only the tokens issued to it. */
async function ownTokensOnly(_koa: KoaContextWithOIDC, client: ClientInstance, token: TokenInstance): Promise<boolean> {
  return token.clientId === client.clientId;
}

function interactionPolicyFor(oidc: OidcModule): ReturnType<OidcModule["interactionPolicy"]["base"]> {
  const { errors, interactionPolicy } = oidc;
  const { Check, base } = interactionPolicy;
  const policy = base();
  const login = policy.get("login");
  if (!login) throw new Error("oidc-provider's base policy has no login prompt");
  // Unknown acr_values are refused before anything happens, with the standard error sent back to the client.
  login.checks.add(
    new Check("acr_values_supported", "requested acr_values are not supported", "invalid_request", (koa) => {
      const requested = koa.oidc.params?.["acr_values"];
      if (typeof requested === "string" && requested.split(" ").some((value) => value !== "" && !isAcr(value))) {
        throw new errors.InvalidRequest(`acr_values must be among ${ACR_VALUES.join(", ")}`);
      }
      return Check.NO_NEED_TO_PROMPT;
    }),
    0,
  );
  // Every authorization goes through Latchkey's sign-in, which checks the browser's Latchkey session, the policy
  // and what the client asked; the provider's own session alone never issues a code.
  login.checks.add(
    new Check("latchkey_session", "sign-in with Latchkey is required", "login_required", (koa) =>
      latchkeyResultOf(koa.oidc.result) ? Check.NO_NEED_TO_PROMPT : Check.REQUEST_PROMPT,
    ),
    1,
  );
  return policy;
}

function requestInfoOf(koa: KoaContextWithOIDC): RequestInfo {
  return { ip: koa.ip || null, userAgent: koa.get("user-agent") || null };
}

/** An OAuth error code as the specifications spell them (`invalid_request`, `login_required` …). */
const OAUTH_ERROR = /^[a-z_]{1,40}$/;

export function buildProvider(oidc: OidcModule, ctx: AppContext, keys: KeySet, bridge: OidcBridge): Provider {
  const { Provider } = oidc;
  const { config } = ctx;
  const { limits } = config;
  const sessionSeconds = limits.sessionAbsoluteTimeoutSeconds;
  const secure = config.secureCookies;
  const cookieOptions = { httpOnly: true, sameSite: "lax", secure };

  const provider = new Provider(config.publicUrl.origin, {
    adapter: adapterFactory(ctx),
    jwks: { keys: keys.keys },
    findAccount: async (_koa: KoaContextWithOIDC, sub: string, token?: TokenInstance) => {
      if (token?.grantId) {
        const live = await liveGrant(ctx, token.grantId);
        if (!live || live.userId !== sub) return undefined;
        if (token.kind === "RefreshToken") await touchSession(ctx, live.sessionId);
        return { accountId: sub, claims: () => claimsOf(live) };
      }
      // The authorization endpoint: the interaction has just checked the person; no claims are issued from here
      // (code flow only: ID tokens come from the token endpoint, with a grant).
      const user = await ctx.db.selectFrom("users").select("id").where("id", "=", sub).executeTakeFirst();
      return user ? { accountId: sub, claims: () => ({ sub }) } : undefined;
    },
    claims: CLAIMS_BY_SCOPE,
    scopes: [...SCOPES],
    acrValues: [...ACR_VALUES],
    // Scope claims in the ID token too: most libraries read the person from it.
    conformIdTokenClaims: false,
    responseTypes: ["code"],
    clientAuthMethods: ["client_secret_basic", "none"],
    // PKCE for every client, confidential ones too (RFC 9700 §2.1.1); only S256 exists in this library version.
    pkce: { required: () => true },
    // OpenID Connect requires redirect_uri on every request.
    allowOmittingSingleRegisteredRedirectUri: false,
    features: {
      devInteractions: { enabled: false },
      // Not offered: nothing in Latchkey's clients needs them, and each is more surface.
      dPoP: { enabled: false },
      pushedAuthorizationRequests: { enabled: false },
      userinfo: { enabled: true },
      revocation: { enabled: true, allowedPolicy: ownTokensOnly },
      introspection: { enabled: true, allowedPolicy: ownTokensOnly },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (koa: KoaContextWithOIDC, form: string) => {
          koa.type = "html";
          koa.body = bridge.pages.logout({ form, clientName: koa.oidc.client?.clientName });
        },
        postLogoutSuccessSource: async (koa: KoaContextWithOIDC) => {
          koa.type = "html";
          koa.body = bridge.pages.loggedOut({ clientName: koa.oidc.client?.clientName });
        },
      },
    },
    routes: providerRoutes,
    ttl: {
      AuthorizationCode: limits.oidcAuthorizationCodeTtlSeconds,
      AccessToken: limits.oidcAccessTokenTtlSeconds,
      IdToken: limits.oidcIdTokenTtlSeconds,
      Interaction: limits.oidcInteractionTtlSeconds,
      Session: sessionSeconds,
      Grant: sessionSeconds,
      RefreshToken: sessionSeconds,
    },
    rotateRefreshToken: true,
    issueRefreshToken: async (_koa: KoaContextWithOIDC, client: { grantTypeAllowed(type: string): boolean }) =>
      client.grantTypeAllowed("refresh_token"),
    // Every code and token is bound to the provider's session, so a client's logout ends them all.
    expiresWithSession: async () => true,
    loadExistingGrant: (koa: KoaContextWithOIDC) => loadGrantFor(ctx, koa),
    interactions: {
      url: (_koa: KoaContextWithOIDC, interaction: { uid: string }) => pathTo("oidcInteraction", { uid: interaction.uid }),
      policy: interactionPolicyFor(oidc),
    },
    cookies: {
      keys: cookieKeys(ctx),
      names: {
        // __Host- needs Path=/ (the session cookie); the interaction cookies are scoped to their paths.
        session: `${secure ? "__Host-" : ""}latchkey_oidc_session`,
        interaction: `${secure ? "__Secure-" : ""}latchkey_oidc_interaction`,
        resume: `${secure ? "__Secure-" : ""}latchkey_oidc_resume`,
      },
      long: cookieOptions,
      short: cookieOptions,
    },
    renderError: async (koa: KoaContextWithOIDC, out: { error: string; error_description?: string }) => {
      koa.type = "html";
      koa.body = bridge.pages.error({ error: out.error, description: out.error_description });
    },
    // Browsers may call the token, UserInfo, revocation and introspection endpoints from a public client's own origin
    // (a single-page app), and UserInfo from any client's; never from elsewhere.
    clientBasedCORS: (koa: KoaContextWithOIDC, origin: string, client: ClientInstance) =>
      origin !== "null" &&
      (koa.oidc.route === "userinfo" || client.clientAuthMethod === "none") &&
      client.redirectUris.some((uri) => URL.parse(uri)?.origin === origin),
    // The provider's only outgoing requests are back-channel logouts, to URIs the operator registered (clients come
    // from the CLI only): they may be on a private network or this host, so the library's guard against requests to
    // special-use addresses (its `dispatcher`) is left out. Each gives up after a few seconds.
    fetch: (url: string, options: RequestInit & { dispatcher?: unknown }) => {
      const { dispatcher: _guard, ...rest } = options;
      return fetch(url, { ...rest, signal: AbortSignal.timeout(limits.oidcBackchannelTimeoutSeconds * 1000) });
    },
  });

  // The HTTP layer overwrites X-Forwarded-Proto/Host/For from LATCHKEY_PUBLIC_URL and the client address it trusts,
  // so the provider builds its URLs on the public origin and knows the connection is secure behind a TLS proxy.
  provider.proxy = true;

  // Secrets are stored hashed (clients.ts); the library would compare the stored value with the presented secret.
  provider.Client.prototype.compareClientSecret = function compareClientSecret(this: ClientInstance, actual: string): boolean {
    return secretMatches(this.clientSecret, actual);
  };

  // A confirmed logout from a client also signs the browser out of Latchkey: clearing its session cookie, ending the
  // session, and (through the sweep) telling the other clients. Not when the provider logs out its own session on
  // the way back to an authorization (a different person signed in): that redirect goes to the authorization.
  provider.use(async (koa, next) => {
    await next();
    const oidc = koa.oidc as KoaContextWithOIDC["oidc"] | undefined;
    if (oidc?.route !== "end_session_confirm" || koa.status !== 303 || !oidc.params?.["logout"]) return;
    const session = oidc.entities["Session"] as SessionInstance | undefined;
    if (!session?.accountId) return;
    const location = koa.response.get("location");
    if (new URL(location, config.publicUrl.origin).pathname.startsWith(`${routes.oidcAuthorization}/`)) return;
    for (const cookie of await bridge.endBrowserSession(koa.get("cookie") || undefined, requestInfoOf(koa))) {
      koa.append("Set-Cookie", cookie);
    }
    bridge.requestSweep();
  });

  provider.on("server_error", (_koa: KoaContextWithOIDC, error: Error) => bridge.log.error({ err: error }, "OpenID Provider error"));
  // Sign-ins into applications, for the metrics: an authorization answered with a code, or refused with an OAuth
  // error code (a fixed set of oidc-provider's error classes; anything else counts as `error`).
  provider.on("authorization.success", () => ctx.metrics.signIn("oidc", "success"));
  provider.on("authorization.error", (_koa: KoaContextWithOIDC, error: { error?: unknown }) =>
    ctx.metrics.signIn("oidc", typeof error.error === "string" && OAUTH_ERROR.test(error.error) ? error.error : "error"),
  );
  return provider;
}
