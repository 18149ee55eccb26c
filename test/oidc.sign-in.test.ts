import * as client from "openid-client";
import { afterAll, beforeAll, expect, it } from "vitest";
import { addMembership, Browser, csrfFrom, seedMember, signedInBrowser } from "./helpers/app.js";
import { enableAuthApp, passwordStep, submitCode, submitRecoveryCode, totpCode, STEP_SECONDS } from "./helpers/auth-app.js";
import { describeEachDialect } from "./helpers/dialects.js";
import { startTestIdp, type TestIdp } from "./helpers/oidc-provider.js";
import {
  authorizationUrl,
  authorizeInBrowser,
  discover,
  exchangeCode,
  follow,
  registerClient,
  startListeningApp,
  verifyWithJwks,
  type ListeningApp,
} from "./helpers/oidc-rp.js";
import { connectSso } from "../src/team/sso.js";
import { ssoRedirectUri } from "../src/auth/sso-sign-in.js";
import { newId } from "../src/auth/tokens.js";

describeEachDialect("signing in to an application with Latchkey (OpenID Connect)", (dialect) => {
  let t: ListeningApp;
  let config: client.Configuration;

  beforeAll(async () => {
    t = await startListeningApp(dialect);
    config = await discover(t.origin, await registerClient(t, { name: "Wiki" }));
  });
  afterAll(async () => {
    await t?.close();
  });

  /** The authorization codes ever issued to a person. */
  async function codesFor(userId: string): Promise<unknown[]> {
    return t.ctx.db
      .selectFrom("oidc_models")
      .select("id")
      .where("model", "=", "AuthorizationCode")
      .where("payload", "like", `%"accountId":"${userId}"%`)
      .execute();
  }

  /** Authorization → Latchkey → code → tokens, in a browser that is already signed in to Latchkey. */
  async function signInToApp(browser: Browser, params: Record<string, string> = {}): Promise<Awaited<ReturnType<typeof exchangeCode>>> {
    const started = await authorizationUrl(config, params);
    return exchangeCode(config, await authorizeInBrowser(browser, t.origin, started), started);
  }

  it("email-link sign-in: the client gets an ID token (sub = user id, acr email, amr pwd), UserInfo and a refresh", async () => {
    const member = await seedMember(t, { name: "Ada Lovelace", accountName: "Analytical" });
    const browser = await signedInBrowser(t, member);
    const tokens = await signInToApp(browser);
    const claims = tokens.claims()!;
    expect(claims).toMatchObject({
      iss: t.origin,
      sub: member.userId,
      email: member.email,
      email_verified: true,
      name: "Ada Lovelace",
      account_id: member.accountId,
      account_name: "Analytical",
      role: "member",
      acr: "urn:latchkey:loa:email",
      amr: ["pwd"],
    });
    expect(typeof claims.auth_time).toBe("number");
    await verifyWithJwks(t.origin, tokens.id_token!);
    expect(tokens.expires_in).toBe(600);

    const info = await client.fetchUserInfo(config, tokens.access_token, member.userId);
    expect(info).toEqual({
      sub: member.userId,
      email: member.email,
      email_verified: true,
      name: "Ada Lovelace",
      account_id: member.accountId,
      account_name: "Analytical",
      role: "member",
    });

    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token!);
    // Rotation: a new refresh token each time; the old one is spent.
    expect(refreshed.refresh_token).toBeTruthy();
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
    expect(refreshed.claims()).toMatchObject({ sub: member.userId, acr: "urn:latchkey:loa:email" });
    expect((await client.fetchUserInfo(config, refreshed.access_token, member.userId)).sub).toBe(member.userId);
  });

  it("without a Latchkey session the browser is sent to sign in, and no code is issued; after signing in it finishes", async () => {
    const member = await seedMember(t);
    const browser = new Browser(t.app);
    const started = await authorizationUrl(config);
    const followed = await follow(browser, t.origin, started.url);
    expect(followed.leftTo).toBeUndefined();
    const [, interactionUrl, loginUrl] = followed.visited.map((url) => new URL(url));
    const interaction = interactionUrl!.pathname;
    expect(interaction).toMatch(/^\/oidc\/interaction\/[A-Za-z0-9_-]{43}$/);
    expect(`${loginUrl!.pathname}${loginUrl!.search}`).toBe(`/login?return_to=${encodeURIComponent(interaction)}`);
    expect(await codesFor(member.userId)).toEqual([]);

    // Sign in in the same browser (the sign-in pages bring the person back through return_to), then the same request finishes.
    expect((await browser.signInWithPassword(member.email, member.password)).statusCode).toBe(303);
    expect((await browser.get(t.mail.lastLink(member.email))).statusCode).toBe(303);
    const resumed = await follow(browser, t.origin, interaction);
    expect(resumed.leftTo).toBeDefined();
    const tokens = await exchangeCode(config, new URL(resumed.leftTo!), started);
    expect(tokens.claims()?.sub).toBe(member.userId);
  });

  it("auth-app sign-in: acr app, amr pwd otp mfa; a recovery code counts as the app", async () => {
    const member = await seedMember(t);
    const { secret, codes } = await enableAuthApp(t, member);
    t.clock.advanceSeconds(STEP_SECONDS);
    const withApp = await passwordStep(t, member);
    expect((await submitCode(withApp, totpCode(t, secret))).statusCode).toBe(200);
    expect((await signInToApp(withApp)).claims()).toMatchObject({
      sub: member.userId,
      acr: "urn:latchkey:loa:app",
      amr: ["pwd", "otp", "mfa"],
    });

    const withCode = await passwordStep(t, member);
    expect((await submitRecoveryCode(withCode, codes[0])).statusCode).toBe(200);
    expect((await signInToApp(withCode)).claims()).toMatchObject({ acr: "urn:latchkey:loa:app", amr: ["pwd", "otp", "mfa"] });
  });

  it("a person in several accounts: the claims describe the account of the session (the one chosen)", async () => {
    const first = await seedMember(t, { accountName: "First", role: "admin" });
    const second = await seedMember(t, { accountName: "Second" });
    // The same person is also a member of the second account.
    await addMembership(t, { userId: first.userId, accountId: second.accountId });
    const browser = await signedInBrowser(t, first);
    const chosen = await browser.request("POST", "/api/v1/session/account", { json: { accountId: second.accountId } });
    expect(chosen.statusCode).toBe(200);
    const claims = (await signInToApp(browser)).claims()!;
    expect(claims).toMatchObject({ sub: first.userId, account_id: second.accountId, account_name: "Second", role: "member" });
  });

  it('"Require auth app": a member who has not set it up is sent to setup, and gets a code only once it is done', async () => {
    const member = await seedMember(t);
    await t.ctx.db.updateTable("accounts").set({ two_factor_policy: "auth_app_required" }).where("id", "=", member.accountId).execute();
    const browser = await signedInBrowser(t, member);
    const started = await authorizationUrl(config);
    const held = await follow(browser, t.origin, started.url);
    expect(held.leftTo).toBeUndefined();
    expect(new URL(held.visited.at(-1)!).pathname).toBe("/settings/two-factor");
    expect(held.response.statusCode).toBe(200);
    expect(await codesFor(member.userId)).toEqual([]);
    const interaction = held.visited.find((url) => url.includes("/oidc/interaction/"))!;

    await enableAuthApp(t, member, browser);
    const resumed = await follow(browser, t.origin, interaction);
    expect(resumed.leftTo).toBeDefined();
    expect(await codesFor(member.userId)).toHaveLength(1);
    const tokens = await exchangeCode(config, new URL(resumed.leftTo!), started);
    // The code entered at setup proved the app in this session.
    expect(tokens.claims()).toMatchObject({ sub: member.userId, acr: "urn:latchkey:loa:app", amr: ["pwd", "otp", "mfa"] });
  });

  it("step-up: acr_values=urn:latchkey:loa:app sends an email-link member to set up the app, then issues acr app", async () => {
    const member = await seedMember(t);
    const browser = await signedInBrowser(t, member);
    const started = await authorizationUrl(config, { acr_values: "urn:latchkey:loa:app" });
    const held = await follow(browser, t.origin, started.url);
    expect(held.leftTo).toBeUndefined();
    const [, interactionUrl, setupUrl] = held.visited.map((url) => new URL(url));
    const interaction = interactionUrl!.pathname;
    expect(`${setupUrl!.pathname}${setupUrl!.search}`).toBe(`/settings/two-factor?return_to=${encodeURIComponent(interaction)}`);

    await enableAuthApp(t, member, browser);
    const resumed = await follow(browser, t.origin, interaction);
    const tokens = await exchangeCode(config, new URL(resumed.leftTo!), started);
    expect(tokens.claims()).toMatchObject({ acr: "urn:latchkey:loa:app" });
  });

  it("acr_values the session already meets pass at once: the app level covers a request for the email level", async () => {
    const member = await seedMember(t);
    const { secret } = await enableAuthApp(t, member);
    t.clock.advanceSeconds(STEP_SECONDS);
    const browser = await passwordStep(t, member);
    expect((await submitCode(browser, totpCode(t, secret))).statusCode).toBe(200);
    expect((await signInToApp(browser, { acr_values: "urn:latchkey:loa:app" })).claims()?.acr).toBe("urn:latchkey:loa:app");
    expect((await signInToApp(browser, { acr_values: "urn:latchkey:loa:email" })).claims()?.acr).toBe("urn:latchkey:loa:app");
  });

  it("prompt=login asks to sign in again: the session ends, and a new sign-in finishes the request", async () => {
    const member = await seedMember(t);
    const browser = await signedInBrowser(t, member);
    t.clock.advanceSeconds(5);
    const started = await authorizationUrl(config, { prompt: "login" });
    const asked = await follow(browser, t.origin, started.url);
    expect(asked.leftTo).toBeUndefined();
    expect(asked.response.statusCode).toBe(200);
    expect(asked.response.body).toContain("Wiki asks you to sign in again");
    const interaction = new URL(asked.visited.at(-1)!).pathname;
    const reauth = await browser.request("POST", `${interaction}/reauth`, { form: { _csrf: csrfFrom(asked.response.body) } });
    expect(reauth.statusCode).toBe(303);
    expect(reauth.headers.location).toBe(`/login?return_to=${encodeURIComponent(interaction)}`);
    expect((await browser.get("/api/v1/session")).statusCode).toBe(401);

    t.clock.advanceSeconds(1);
    expect((await browser.signInWithPassword(member.email, member.password)).statusCode).toBe(303);
    expect((await browser.get(t.mail.lastLink(member.email))).statusCode).toBe(303);
    const resumed = await follow(browser, t.origin, interaction);
    expect(resumed.leftTo).toBeDefined();
    expect((await exchangeCode(config, new URL(resumed.leftTo!), started)).claims()?.sub).toBe(member.userId);
  });

  it("max_age older than the session's sign-in asks to sign in again; a recent one passes", async () => {
    const member = await seedMember(t);
    const browser = await signedInBrowser(t, member);
    expect((await signInToApp(browser, { max_age: "300" })).claims()?.sub).toBe(member.userId);
    t.clock.advanceSeconds(120);
    const started = await authorizationUrl(config, { max_age: "60" });
    const asked = await follow(browser, t.origin, started.url);
    expect(asked.leftTo).toBeUndefined();
    expect(asked.response.body).toContain("asks for a recent sign-in");
  });

  it("prompt=none is answered login_required: every authorization passes through Latchkey's sign-in", async () => {
    const member = await seedMember(t);
    const browser = await signedInBrowser(t, member);
    const started = await authorizationUrl(config, { prompt: "none" });
    const followed = await follow(browser, t.origin, started.url);
    const callback = new URL(followed.leftTo!);
    expect(callback.searchParams.get("error")).toBe("login_required");
    expect(callback.searchParams.get("code")).toBeNull();
    expect(callback.searchParams.get("state")).toBe(started.state);
  });
});

describeEachDialect("signing in to an application through single sign-on", (dialect) => {
  let t: ListeningApp;
  let idp: TestIdp;
  let config: client.Configuration;
  const domain = `sso-${newId().slice(0, 6)}.example`;

  beforeAll(async () => {
    t = await startListeningApp(dialect);
    idp = await startTestIdp({ redirectUri: ssoRedirectUri(t.ctx) });
    const admin = await seedMember(t, { role: "admin", email: `admin@${domain}`, accountName: "SSO Co" });
    const connected = await connectSso(t.ctx, {
      accountId: admin.accountId,
      issuer: idp.issuer,
      clientId: idp.clientId,
      clientSecret: idp.clientSecret,
      domains: [domain],
    });
    expect(connected.ok).toBe(true);
    config = await discover(t.origin, await registerClient(t));
  });
  afterAll(async () => {
    await idp?.close();
    await t?.close();
  });

  async function ssoBrowser(amr?: string[]): Promise<{ browser: Browser; sub: string }> {
    const browser = new Browser(t.app);
    const started = await browser.request("POST", "/api/v1/login/sso", { json: { domain } });
    expect(started.statusCode).toBe(200);
    const id = newId().slice(0, 8);
    idp.nextUser = { sub: `idp-${id}`, email: `p.${id}@${domain}`, email_verified: true, name: `P ${id}`, ...(amr ? { amr } : {}) };
    const callback = await idp.signIn(started.json<{ authorizationUrl: string }>().authorizationUrl);
    expect((await browser.get(callback)).statusCode).toBe(303);
    const session = (await browser.get("/api/v1/session")).json<{ user: { id: string } }>();
    return { browser, sub: session.user.id };
  }

  it("SSO sign-in: acr sso, amr ext plus the provider's own values", async () => {
    const { browser, sub } = await ssoBrowser(["pwd", "mfa"]);
    const started = await authorizationUrl(config);
    const tokens = await exchangeCode(config, await authorizeInBrowser(browser, t.origin, started), started);
    expect(tokens.claims()).toMatchObject({ sub, acr: "urn:latchkey:loa:sso", amr: ["ext", "pwd", "mfa"] });
    await verifyWithJwks(t.origin, tokens.id_token!);
    expect((await client.fetchUserInfo(config, tokens.access_token, sub)).sub).toBe(sub);
  });

  it("an SSO session asked for the app level: the client gets unmet_authentication_requirements and no code", async () => {
    const { browser } = await ssoBrowser();
    const started = await authorizationUrl(config, { acr_values: "urn:latchkey:loa:app" });
    const followed = await follow(browser, t.origin, started.url);
    const callback = new URL(followed.leftTo!);
    expect(callback.searchParams.get("error")).toBe("unmet_authentication_requirements");
    expect(callback.searchParams.get("code")).toBeNull();
  });
});
