import { afterAll, beforeAll, expect, it } from "vitest";
import { seedMember, signedInBrowser, Browser } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";
import {
  authorizationUrl,
  authorizeInBrowser,
  discover,
  follow,
  registerClient,
  RP_REDIRECT_URI,
  startListeningApp,
  verifyWithJwks,
  exchangeCode,
  type ListeningApp,
  type RegisteredClient,
} from "./helpers/oidc-rp.js";

describeEachDialect("OpenID Provider endpoints", (dialect) => {
  let t: ListeningApp;
  let registered: RegisteredClient;

  beforeAll(async () => {
    t = await startListeningApp(dialect);
    registered = await registerClient(t);
  });
  afterAll(async () => {
    await t?.close();
  });

  it("publishes discovery on the public origin: code flow with PKCE S256, endpoints under /oidc, Latchkey's acr values", async () => {
    const response = await fetch(`${t.origin}/.well-known/openid-configuration`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    const doc = (await response.json()) as Record<string, unknown>;
    expect(doc).toMatchObject({
      issuer: t.origin,
      authorization_endpoint: `${t.origin}/oidc/auth`,
      token_endpoint: `${t.origin}/oidc/token`,
      userinfo_endpoint: `${t.origin}/oidc/userinfo`,
      jwks_uri: `${t.origin}/oidc/jwks`,
      end_session_endpoint: `${t.origin}/oidc/session/end`,
      introspection_endpoint: `${t.origin}/oidc/token/introspection`,
      revocation_endpoint: `${t.origin}/oidc/token/revocation`,
      response_types_supported: ["code"],
      code_challenge_methods_supported: ["S256"],
      grant_types_supported: ["authorization_code", "refresh_token"],
      token_endpoint_auth_methods_supported: ["client_secret_basic", "none"],
      id_token_signing_alg_values_supported: ["RS256"],
      acr_values_supported: ["urn:latchkey:loa:email", "urn:latchkey:loa:app", "urn:latchkey:loa:sso"],
      backchannel_logout_supported: true,
      backchannel_logout_session_supported: true,
    });
    expect(doc["scopes_supported"]).toEqual(expect.arrayContaining(["openid", "email", "profile", "account"]));
    // Nothing that is not served: no dynamic registration, no PAR, no device flow.
    expect(doc).not.toHaveProperty("registration_endpoint");
    expect(doc).not.toHaveProperty("pushed_authorization_request_endpoint");
    expect(doc).not.toHaveProperty("device_authorization_endpoint");
  });

  it("discovery names the public origin whatever Host the request came with", async () => {
    const response = await t.app.inject({
      method: "GET",
      url: "/.well-known/openid-configuration",
      headers: { host: "evil.example", "x-forwarded-host": "evil.example", "x-forwarded-proto": "https" },
    });
    expect(response.statusCode).toBe(200);
    expect(response.body).not.toContain("evil.example");
    expect(response.json()).toMatchObject({ issuer: t.origin, token_endpoint: `${t.origin}/oidc/token` });
  });

  it("publishes one RS256 public key in the JWKS, never a private part", async () => {
    const response = await fetch(`${t.origin}/oidc/jwks`);
    expect(response.status).toBe(200);
    const { keys } = (await response.json()) as { keys: Array<Record<string, unknown>> };
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatchObject({ kty: "RSA", alg: "RS256", use: "sig" });
    expect(Object.keys(keys[0]!).sort()).toEqual(["alg", "e", "kid", "kty", "n", "use"]);
    const stored = await t.ctx.db.selectFrom("oidc_signing_keys").select("kid").execute();
    expect(stored.map((k) => k.kid)).toEqual([keys[0]!["kid"]]);
  });

  it("the provider's answers are its own: token errors are OAuth JSON, not Latchkey's, and no Latchkey CSRF check runs", async () => {
    // A form POST from another origin without a CSRF token: Latchkey's own routes answer 403 csrf_invalid.
    const response = await fetch(`${t.origin}/oidc/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", origin: "https://elsewhere.example" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        code: "nope",
        redirect_uri: RP_REDIRECT_URI,
        client_id: registered.clientId,
      }),
    });
    expect([400, 401]).toContain(response.status);
    expect(response.headers.get("cache-control")).toBe("no-store");
    const body = (await response.json()) as { error: string; error_description: string };
    expect(body.error).toMatch(/^invalid_(client|request|grant)$/);
    expect(body).not.toHaveProperty("message");
  });

  it("an authorization answered with form_post carries a CSP that lets its one script run and post to the client", async () => {
    const member = await seedMember(t);
    const browser = await signedInBrowser(t, member);
    const config = await discover(t.origin, registered);
    const started = await authorizationUrl(config, { response_mode: "form_post" });
    const followed = await follow(browser, t.origin, started.url);
    expect(followed.response.statusCode).toBe(200);
    expect(followed.response.body).toContain(`action="${RP_REDIRECT_URI}"`);
    expect(followed.response.body).toContain('name="code"');
    const csp = String(followed.response.headers["content-security-policy"]);
    expect(csp).toMatch(/script-src 'self' 'sha256-[A-Za-z0-9+/=]+'/);
    expect(csp).not.toContain("form-action");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(followed.response.headers["cache-control"]).toBe("no-store");
  });

  it("an ID token verifies against the published JWKS", async () => {
    const member = await seedMember(t);
    const browser = await signedInBrowser(t, member);
    const config = await discover(t.origin, registered);
    const started = await authorizationUrl(config);
    const tokens = await exchangeCode(config, await authorizeInBrowser(browser, t.origin, started), started);
    const payload = await verifyWithJwks(t.origin, tokens.id_token!);
    expect(payload).toMatchObject({ iss: t.origin, aud: registered.clientId, sub: member.userId });
  });

  it("an unknown path under /oidc is Latchkey's 404, not the provider's", async () => {
    const response = await new Browser(t.app).get("/oidc/nothing-here");
    expect(response.statusCode).toBe(404);
    expect(response.headers["content-type"]).toMatch(/text\/html/);
  });
});
