import type * as OpenIdClient from "openid-client";
import { fail, ok, type Result } from "../errors.js";

/**
 * The OpenID Connect relying party, over `openid-client` (certified): discovery, the authorization URL (code flow,
 * PKCE S256, state, nonce) and the callback (code exchange; ID token signature, issuer, audience, expiry and nonce
 * checked by the library). No HTTP server and no database here.
 */

const SSO_SCOPE = "openid email profile";

let loaded: typeof OpenIdClient | undefined;

/** openid-client, loaded on the first single sign-on rather than at start (memory, issue 10). */
async function openIdClient(): Promise<typeof OpenIdClient> {
  loaded ??= await import("openid-client");
  return loaded;
}

export interface OidcClientSettings {
  issuer: string;
  clientId: string;
  clientSecret: string;
  timeoutSeconds: number;
}

/** The identity the provider vouches for, after every check of the library. */
export interface OidcIdentity {
  subject: string;
  email: string | undefined;
  emailVerified: boolean | undefined;
  name: string | undefined;
  /** The provider's `amr` values (RFC 8176) from the ID token, when it sends them; only short plain tokens are kept. */
  amr: string[];
}

/** At most this many upstream `amr` values are kept, each a short token: they are repeated to our own clients. */
const MAX_UPSTREAM_AMR = 8;

function upstreamAmr(value: unknown): string[] {
  if (!Array.isArray(value)) return [];
  const kept = value.filter((v): v is string => typeof v === "string" && /^[A-Za-z0-9_.:-]{1,32}$/.test(v));
  return [...new Set(kept)].slice(0, MAX_UPSTREAM_AMR);
}

function isLoopbackHost(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/** An issuer URL Latchkey will talk to: https, or http only on a loopback host (development and tests); no query or fragment. */
export function checkIssuerUrl(raw: string): Result<string, "invalid_request"> {
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    return fail("invalid_request", `The issuer must be a URL like https://login.example.com, got "${raw.trim().slice(0, 200)}".`);
  }
  if (url.protocol !== "https:" && !(url.protocol === "http:" && isLoopbackHost(url.hostname))) {
    return fail("invalid_request", "The issuer must be an https URL (http is accepted only on localhost, for development).");
  }
  if (url.search || url.hash || url.username || url.password)
    return fail("invalid_request", "The issuer URL must not carry a query, a fragment or credentials.");
  return ok(raw.trim());
}

/**
 * Fetches the provider's discovery document (`/.well-known/openid-configuration`) and returns a client configuration
 * for it. Client authentication is `client_secret_basic` unless the provider supports only `client_secret_post`.
 * Throws on network or metadata problems (see `describeOidcError`).
 */
export async function discoverProvider(settings: OidcClientSettings): Promise<OpenIdClient.Configuration> {
  const client = await openIdClient();
  const issuer = new URL(settings.issuer);
  const insecure = issuer.protocol === "http:";
  const discovered = await client.discovery(issuer, settings.clientId, undefined, client.None(), {
    timeout: settings.timeoutSeconds,
    ...(insecure ? { execute: [client.allowInsecureRequests] } : {}),
  });
  const server = discovered.serverMetadata();
  const methods = server.token_endpoint_auth_methods_supported;
  const auth =
    !methods || methods.includes("client_secret_basic")
      ? client.ClientSecretBasic(settings.clientSecret)
      : client.ClientSecretPost(settings.clientSecret);
  const configuration = new client.Configuration(server, settings.clientId, undefined, auth);
  configuration.timeout = settings.timeoutSeconds;
  if (insecure) client.allowInsecureRequests(configuration);
  return configuration;
}

export interface AuthorizationRequest {
  url: string;
  codeVerifier: string;
  state: string;
  nonce: string;
}

/** A fresh authorization request: new PKCE verifier, state and nonce every time. */
export async function buildAuthorizationRequest(
  configuration: OpenIdClient.Configuration,
  input: { redirectUri: string; state: string },
): Promise<AuthorizationRequest> {
  const client = await openIdClient();
  const codeVerifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(configuration, {
    redirect_uri: input.redirectUri,
    scope: SSO_SCOPE,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: "S256",
    state: input.state,
    nonce,
  });
  return { url: url.href, codeVerifier, state: input.state, nonce };
}

/**
 * Exchanges the code of an authorization response and returns the verified identity. `callbackUrl` must be the
 * redirect URI plus the response's query. Email claims missing from the ID token are read from the UserInfo endpoint
 * (bound to the same subject), as providers that keep ID tokens small require.
 */
export async function completeAuthorization(
  configuration: OpenIdClient.Configuration,
  input: { callbackUrl: URL; state: string; nonce: string; codeVerifier: string },
): Promise<OidcIdentity> {
  const client = await openIdClient();
  const tokens = await client.authorizationCodeGrant(configuration, input.callbackUrl, {
    pkceCodeVerifier: input.codeVerifier,
    expectedState: input.state,
    expectedNonce: input.nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  if (!claims) throw new Error("the provider returned no ID token");
  let email = typeof claims["email"] === "string" ? claims["email"] : undefined;
  let emailVerified = typeof claims["email_verified"] === "boolean" ? claims["email_verified"] : undefined;
  let name = typeof claims["name"] === "string" ? claims["name"] : undefined;
  if (email === undefined || emailVerified === undefined) {
    const info = await client.fetchUserInfo(configuration, tokens.access_token, claims.sub);
    email = typeof info.email === "string" ? info.email : undefined;
    emailVerified = typeof info.email_verified === "boolean" ? info.email_verified : undefined;
    name ??= typeof info.name === "string" ? info.name : undefined;
  }
  return { subject: claims.sub, email, emailVerified, name, amr: upstreamAmr(claims["amr"]) };
}

/**
 * What went wrong talking to a provider, for a person: `unavailable` when it could not be reached or its discovery
 * failed, `refused` when it answered but the sign-in is not valid (denied, bad code, ID token that does not verify).
 */
export function describeOidcError(error: unknown, phase: "discovery" | "exchange"): { kind: "unavailable" | "refused"; message: string } {
  // Errors of openid-client's own classes can only come after it was loaded.
  if (loaded && error instanceof loaded.AuthorizationResponseError) {
    return { kind: "refused", message: `Your identity provider did not sign you in (${error.error.slice(0, 64)}).` };
  }
  if (loaded && error instanceof loaded.ResponseBodyError) {
    return { kind: "refused", message: `Your identity provider refused the sign-in (${error.error.slice(0, 64)}). Please start again.` };
  }
  const name = error instanceof Error ? error.name : "";
  const text = (error instanceof Error ? error.message : String(error)).slice(0, 200);
  if (name === "TimeoutError" || name === "AbortError" || (error instanceof TypeError && /fetch failed/i.test(text))) {
    return {
      kind: "unavailable",
      message: "Your identity provider could not be reached. Please try again in a moment; if it keeps failing, tell your administrator.",
    };
  }
  if (phase === "discovery")
    return { kind: "unavailable", message: `Your identity provider's configuration could not be read (${text}). Tell your administrator.` };
  return { kind: "refused", message: `The answer of your identity provider could not be verified (${text}). Please start again.` };
}
