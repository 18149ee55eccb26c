import * as client from "openid-client";
import { afterAll, beforeAll, expect, it } from "vitest";
import { seedMember, signedInBrowser, type Browser } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";
import {
  authorizationUrl,
  authorizeInBrowser,
  discover,
  exchangeCode,
  follow,
  registerClient,
  RP_REDIRECT_URI,
  startListeningApp,
  type ListeningApp,
  type RegisteredClient,
} from "./helpers/oidc-rp.js";

/**
 * Bad input to the OpenID Provider: each answer is the standard OAuth error (to the client's redirect URI when that
 * is known to be the client's, else on a page), nothing is issued, and nothing is ever a 5xx.
 */
describeEachDialect("OpenID Provider: bad input", (dialect) => {
  let t: ListeningApp;
  let registered: RegisteredClient;
  let publicClient: RegisteredClient;
  let config: client.Configuration;
  let browser: Browser;
  let userId: string;

  beforeAll(async () => {
    t = await startListeningApp(dialect);
    registered = await registerClient(t);
    publicClient = await registerClient(t, { name: "SPA", public: true });
    config = await discover(t.origin, registered);
    const member = await seedMember(t);
    userId = member.userId;
    browser = await signedInBrowser(t, member);
  });
  afterAll(async () => {
    await t?.close();
  });

  /** The OAuth error of a failed openid-client call: in the body, or (401) in the WWW-Authenticate challenge. */
  function oauthError(error: unknown): string | undefined {
    const e = error as { error?: string; cause?: Array<{ parameters?: { error?: string } }> };
    return e.error ?? (Array.isArray(e.cause) ? e.cause[0]?.parameters?.error : undefined);
  }

  async function tokensIssued(): Promise<number> {
    const rows = await t.ctx.db
      .selectFrom("oidc_models")
      .select("id")
      .where("model", "in", ["AccessToken", "RefreshToken"])
      .where("payload", "like", `%"accountId":"${userId}"%`)
      .execute();
    return rows.length;
  }

  /** The authorization's end: the error sent to the client's redirect URI, or the page shown instead. */
  async function authorize(query: Record<string, string>): Promise<{ status: number; callback: URL | undefined; body: string }> {
    const followed = await follow(browser, t.origin, `/oidc/auth?${new URLSearchParams(query).toString()}`);
    expect(followed.response.statusCode).toBeLessThan(500);
    return {
      status: followed.response.statusCode,
      callback: followed.leftTo ? new URL(followed.leftTo) : undefined,
      body: followed.response.body,
    };
  }

  const base = (): Record<string, string> => ({
    client_id: registered.clientId,
    redirect_uri: RP_REDIRECT_URI,
    response_type: "code",
    scope: "openid",
    state: "s1",
    nonce: "n1",
    code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    code_challenge_method: "S256",
  });

  it("an unknown client gets a page, never a redirect", async () => {
    const result = await authorize({ ...base(), client_id: "0".repeat(32) });
    expect(result.callback).toBeUndefined();
    expect(result.status).toBe(400);
    expect(result.body).toContain("invalid_client");
  });

  it("a redirect URI the client did not register gets a page, never a redirect", async () => {
    for (const redirect of [
      "https://evil.example/callback",
      `${RP_REDIRECT_URI}/x`,
      "http://127.0.0.1:9/callback?x=1",
      "http://127.0.0.1:9/CALLBACK",
    ]) {
      const result = await authorize({ ...base(), redirect_uri: redirect });
      expect(result.callback, redirect).toBeUndefined();
      expect(result.status, redirect).toBe(400);
      expect(result.body).toContain("redirect_uri");
    }
    // Leaving it out is refused too (OpenID Connect requires it).
    const { redirect_uri: _left, ...without } = base();
    expect((await authorize(without)).callback).toBeUndefined();
  });

  it("PKCE is required of every client: without a code challenge the client gets invalid_request", async () => {
    for (const clientId of [registered.clientId, publicClient.clientId]) {
      const { code_challenge: _c, code_challenge_method: _m, ...without } = base();
      const result = await authorize({ ...without, client_id: clientId });
      expect(result.callback?.searchParams.get("error")).toBe("invalid_request");
      expect(result.callback?.searchParams.get("code")).toBeNull();
      expect(result.callback?.searchParams.get("state")).toBe("s1");
    }
    const plain = await authorize({ ...base(), code_challenge_method: "plain" });
    expect(plain.callback?.searchParams.get("error")).toBe("invalid_request");
  });

  it("unknown acr_values get invalid_request and no code", async () => {
    const result = await authorize({ ...base(), acr_values: "urn:latchkey:loa:app urn:example:gold" });
    expect(result.callback?.searchParams.get("error")).toBe("invalid_request");
    expect(result.callback?.searchParams.get("error_description")).toContain("acr_values");
    expect(result.callback?.searchParams.get("code")).toBeNull();
  });

  it("response types other than code, and unknown scopes only, are refused", async () => {
    const token = await authorize({ ...base(), response_type: "token" });
    expect(token.callback?.searchParams.get("error") ?? token.body).toMatch(/unsupported_response_type/);
    const noOpenid = await authorize({ ...base(), scope: "email" });
    expect(noOpenid.callback?.searchParams.get("error")).toBe("invalid_request");
  });

  it("a wrong code verifier is invalid_grant and issues nothing", async () => {
    const before = await tokensIssued();
    const started = await authorizationUrl(config);
    const callback = await authorizeInBrowser(browser, t.origin, started);
    const error = await exchangeCode(config, callback, { ...started, codeVerifier: client.randomPKCECodeVerifier() }).catch(
      (e: unknown) => e,
    );
    expect((error as { error?: string }).error).toBe("invalid_grant");
    expect(await tokensIssued()).toBe(before);
  });

  it("a replayed code is invalid_grant, and the tokens of its first use are revoked", async () => {
    const started = await authorizationUrl(config);
    const callback = await authorizeInBrowser(browser, t.origin, started);
    const first = await exchangeCode(config, callback, started);
    const replay = await exchangeCode(config, callback, started).catch((e: unknown) => e);
    expect((replay as { error?: string }).error).toBe("invalid_grant");
    expect((await client.tokenIntrospection(config, first.access_token)).active).toBe(false);
    await expect(client.refreshTokenGrant(config, first.refresh_token!)).rejects.toMatchObject({ error: "invalid_grant" });
  });

  it("a tampered state is refused by the client library before any token request: nothing is issued", async () => {
    const before = await tokensIssued();
    const started = await authorizationUrl(config);
    const callback = await authorizeInBrowser(browser, t.origin, started);
    expect(callback.searchParams.get("state")).toBe(started.state);
    callback.searchParams.set("state", `${started.state}x`);
    // openid-client checks the state before it sends anything to the token endpoint.
    await expect(exchangeCode(config, callback, started)).rejects.toMatchObject({ code: "OAUTH_INVALID_RESPONSE" });
    expect(await tokensIssued()).toBe(before);
    // The untampered answer still works once (the code was never spent).
    callback.searchParams.set("state", started.state);
    expect((await exchangeCode(config, callback, started)).access_token).toBeTruthy();
  });

  it("a wrong client secret, or a confidential client without one, is invalid_client", async () => {
    const started = await authorizationUrl(config);
    const callback = await authorizeInBrowser(browser, t.origin, started);
    const wrong = await client.discovery(new URL(t.origin), registered.clientId, undefined, client.ClientSecretBasic("not-the-secret"), {
      execute: [client.allowInsecureRequests],
    });
    expect(oauthError(await exchangeCode(wrong, callback, started).catch((e: unknown) => e))).toBe("invalid_client");
    const none = await client.discovery(new URL(t.origin), registered.clientId, undefined, client.None(), {
      execute: [client.allowInsecureRequests],
    });
    expect(oauthError(await exchangeCode(none, callback, started).catch((e: unknown) => e))).toBe("invalid_client");
    // The code was never spent by these failures: the right client still redeems it.
    expect((await exchangeCode(config, callback, started)).access_token).toBeTruthy();
  });

  it("junk at every endpoint is a 4xx (never a 5xx)", async () => {
    const forms: Array<[string, Record<string, string>]> = [
      ["/oidc/token", {}],
      ["/oidc/token", { grant_type: "password", username: "a", password: "b" }],
      ["/oidc/token", { grant_type: "authorization_code", code: "x".repeat(5000), redirect_uri: RP_REDIRECT_URI }],
      ["/oidc/token", { grant_type: "refresh_token", refresh_token: "\u0000" }],
      ["/oidc/session/end/confirm", { xsrf: "nope", logout: "yes" }],
    ];
    for (const [path, form] of forms) {
      const response = await fetch(`${t.origin}${path}`, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          authorization: `Basic ${Buffer.from(`${registered.clientId}:${registered.clientSecret}`).toString("base64")}`,
        },
        body: new URLSearchParams(form),
      });
      expect(response.status, `${path} ${JSON.stringify(form).slice(0, 80)}`).toBeGreaterThanOrEqual(400);
      expect(response.status, path).toBeLessThan(500);
    }
    for (const path of [
      "/oidc/auth",
      "/oidc/auth?client_id=%00",
      "/oidc/auth/not-a-real-interaction",
      "/oidc/userinfo",
      "/oidc/session/end?id_token_hint=garbage",
      "/oidc/session/end/success?client_id=nope",
      "/oidc/interaction/not-a-real-interaction",
      `/oidc/interaction/${"A".repeat(43)}`,
    ]) {
      const response = await fetch(`${t.origin}${path}`, { redirect: "manual" });
      expect(response.status, path).toBeLessThan(500);
    }
    // An unknown token is inactive (introspection) and its revocation a no-op (RFC 7662, RFC 7009): 200, nothing told.
    for (const path of ["/oidc/token/introspection", "/oidc/token/revocation"]) {
      const response = await fetch(`${t.origin}${path}`, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          authorization: `Basic ${Buffer.from(`${registered.clientId}:${registered.clientSecret}`).toString("base64")}`,
        },
        body: new URLSearchParams({ token: "nope" }),
      });
      expect(response.status, path).toBe(200);
      if (path.endsWith("introspection")) expect(await response.json()).toEqual({ active: false });
    }
    // The userinfo endpoint with a made-up token.
    const userinfo = await fetch(`${t.origin}/oidc/userinfo`, { headers: { authorization: "Bearer made-up" } });
    expect(userinfo.status).toBe(401);
  });
});
