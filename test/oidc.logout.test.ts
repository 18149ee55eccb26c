import * as client from "openid-client";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Browser, csrfFrom, seedMember, signedInBrowser } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";
import {
  authorizationUrl,
  authorizeInBrowser,
  discover,
  exchangeCode,
  follow,
  registerClient,
  startBackchannelReceiver,
  startListeningApp,
  verifyWithJwks,
  type BackchannelReceiver,
  type ListeningApp,
  type RegisteredClient,
} from "./helpers/oidc-rp.js";

describeEachDialect("ending applications' sessions (OpenID Connect)", (dialect) => {
  let t: ListeningApp;
  let receiver: BackchannelReceiver;
  let registered: RegisteredClient;
  let config: client.Configuration;
  let other: client.Configuration;

  beforeAll(async () => {
    t = await startListeningApp(dialect);
    receiver = await startBackchannelReceiver();
    registered = await registerClient(t, {
      name: "Wiki",
      backchannelLogoutUri: receiver.uri,
      postLogoutRedirectUris: ["http://127.0.0.1:9/signed-out"],
    });
    config = await discover(t.origin, registered);
    other = await discover(t.origin, await registerClient(t, { name: "Other" }));
  });
  afterAll(async () => {
    await receiver?.close();
    await t?.close();
  });

  type Tokens = Awaited<ReturnType<typeof exchangeCode>>;

  async function signInToApp(browser: Browser, to = config): Promise<Tokens> {
    const started = await authorizationUrl(to);
    return exchangeCode(to, await authorizeInBrowser(browser, t.origin, started), started);
  }

  async function refreshError(tokens: Tokens, to = config): Promise<string> {
    try {
      await client.refreshTokenGrant(to, tokens.refresh_token!);
    } catch (error) {
      return (error as { error?: string }).error ?? String(error);
    }
    return "refreshed";
  }

  async function introspect(token: string, as = config): Promise<boolean> {
    return (await client.tokenIntrospection(as, token)).active;
  }

  /** The logout tokens about `sub` received since `before`, verified against the JWKS. */
  async function logoutTokensSince(before: number, sub: string): Promise<Array<Record<string, unknown>>> {
    const verified = await Promise.all(receiver.tokens.slice(before).map((jwt) => verifyWithJwks(t.origin, jwt)));
    return verified.filter((token) => token["sub"] === sub);
  }

  function expectLogoutToken(token: Record<string, unknown> | undefined, sub: string, idToken: Tokens): void {
    expect(token).toMatchObject({
      iss: t.origin,
      aud: registered.clientId,
      sub,
      sid: idToken.claims()!["sid"],
      events: { "http://schemas.openid.net/event/backchannel-logout": {} },
    });
    expect(token).not.toHaveProperty("nonce");
  }

  it("a removed member's refresh fails at once, and the client receives a signed back-channel logout", async () => {
    const admin = await seedMember(t, { role: "admin" });
    const member = await seedMember(t, { accountId: admin.accountId });
    const adminBrowser = await signedInBrowser(t, admin);
    const tokens = await signInToApp(await signedInBrowser(t, member));
    expect(tokens.claims()!["sid"]).toEqual(expect.any(String));
    expect(await introspect(tokens.access_token)).toBe(true);

    const page = await adminBrowser.get(`/settings/team/members/${member.userId}/remove`);
    const removed = await adminBrowser.request("POST", `/settings/team/members/${member.userId}/remove`, {
      form: { _csrf: csrfFrom(page.body) },
    });
    expect(removed.statusCode).toBe(303);
    // Before any sweep: the grant's session and membership are gone, so the library finds no account.
    expect(await refreshError(tokens)).toBe("invalid_grant");
    await expect(client.fetchUserInfo(config, tokens.access_token, member.userId)).rejects.toThrow();

    const before = receiver.tokens.length;
    expect(await t.app.oidc.sweep()).toBeGreaterThanOrEqual(1);
    const received = await logoutTokensSince(before, member.userId);
    expect(received).toHaveLength(1);
    expectLogoutToken(received[0], member.userId, tokens);
    // Revoked, not only refused: nothing of the grant is left.
    expect(await introspect(tokens.access_token)).toBe(false);
    expect(await introspect(tokens.refresh_token!)).toBe(false);
    // A second sweep finds nothing more to tell.
    await t.app.oidc.sweep();
    expect(await logoutTokensSince(before, member.userId)).toHaveLength(1);
  });

  it("signing out of Latchkey tells the client right away", async () => {
    const member = await seedMember(t);
    const browser = await signedInBrowser(t, member);
    const tokens = await signInToApp(browser);
    const before = receiver.tokens.length;
    const home = await browser.get("/");
    expect((await browser.request("POST", "/logout", { form: { _csrf: csrfFrom(home.body) } })).statusCode).toBe(303);
    await t.app.oidc.settled();
    const received = await logoutTokensSince(before, member.userId);
    expect(received).toHaveLength(1);
    expectLogoutToken(received[0], member.userId, tokens);
    expect(await refreshError(tokens)).toBe("invalid_grant");
  });

  it("a password change ends the person's applications, this browser's included", async () => {
    const member = await seedMember(t);
    const browser = await signedInBrowser(t, member);
    const tokens = await signInToApp(browser);
    const page = await browser.get("/settings/password");
    const changed = await browser.request("POST", "/settings/password", {
      form: { _csrf: csrfFrom(page.body), currentPassword: member.password, newPassword: "an entirely new passphrase" },
    });
    expect(changed.statusCode).toBeLessThan(400);
    expect(await refreshError(tokens)).toBe("invalid_grant");
    const before = receiver.tokens.length;
    await t.app.oidc.sweep();
    expect(await logoutTokensSince(before, member.userId)).toHaveLength(1);
    // The browser itself stays signed in and can sign in to the application again.
    expect((await signInToApp(browser)).claims()?.sub).toBe(member.userId);
  });

  it("signing another browser out from Sessions tells the client right away; this browser's application stays", async () => {
    const member = await seedMember(t);
    const here = await signedInBrowser(t, member);
    const there = await signedInBrowser(t, member);
    const mine = await signInToApp(here);
    const theirs = await signInToApp(there);
    const sessions = (await here.get("/api/v1/sessions")).json() as { sessions: Array<{ id: string; current: boolean }> };
    const other = sessions.sessions.find((s) => !s.current)!;
    const before = receiver.tokens.length;
    expect((await here.request("DELETE", `/api/v1/sessions/${other.id}`)).statusCode).toBe(204);
    await t.app.oidc.settled();
    const received = await logoutTokensSince(before, member.userId);
    expect(received).toHaveLength(1);
    expectLogoutToken(received[0], member.userId, theirs);
    expect(await refreshError(theirs)).toBe("invalid_grant");
    expect(await refreshError(mine)).toBe("refreshed");
  });

  it("an email change ends the applications of the person's other browsers", async () => {
    const member = await seedMember(t);
    const here = await signedInBrowser(t, member);
    const there = await signedInBrowser(t, member);
    const theirs = await signInToApp(there);
    const target = `moved-${member.userId.slice(0, 8)}@example.org`;
    expect((await here.request("POST", "/api/v1/email-change", { json: { email: target } })).statusCode).toBe(200);
    const link = t.mail.lastLink(target);
    const page = await here.get(link);
    const before = receiver.tokens.length;
    expect((await here.request("POST", link, { form: { _csrf: csrfFrom(page.body) } })).statusCode).toBe(200);
    await t.app.oidc.settled();
    const received = await logoutTokensSince(before, member.userId);
    expect(received).toHaveLength(1);
    expectLogoutToken(received[0], member.userId, theirs);
    // This browser's application sees the new address at its next sign-in.
    expect((await signInToApp(here)).claims()?.["email"]).toBe(target);
  });

  it("the Latchkey session's idle timeout ends the client's session; a refresh counts as activity", async () => {
    const member = await seedMember(t);
    const tokens = await signInToApp(await signedInBrowser(t, member));
    const idle = t.config.limits.sessionIdleTimeoutSeconds;
    // Refreshing keeps the session in use …
    t.clock.advanceSeconds(idle - 60);
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token!);
    t.clock.advanceSeconds(idle - 60);
    const again = await client.refreshTokenGrant(config, refreshed.refresh_token!);
    // … and without it, the session idles out.
    t.clock.advanceSeconds(idle + 1);
    expect(await refreshError(again)).toBe("invalid_grant");
    const before = receiver.tokens.length;
    await t.app.oidc.sweep();
    expect(await logoutTokensSince(before, member.userId)).toHaveLength(1);
  });

  it("refresh tokens rotate: a spent one is refused and revokes the whole grant", async () => {
    const member = await seedMember(t);
    const tokens = await signInToApp(await signedInBrowser(t, member));
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token!);
    expect(await refreshError(tokens)).toBe("invalid_grant");
    // The replay revoked the grant: the newer token is dead too.
    expect(await refreshError(refreshed)).toBe("invalid_grant");
    expect(await introspect(refreshed.access_token)).toBe(false);
  });

  it("revocation: a revoked refresh token no longer refreshes; a revoked access token no longer reads UserInfo", async () => {
    const member = await seedMember(t);
    const browser = await signedInBrowser(t, member);
    const first = await signInToApp(browser);
    await client.tokenRevocation(config, first.refresh_token!);
    expect(await refreshError(first)).toBe("invalid_grant");

    const second = await signInToApp(browser);
    await client.tokenRevocation(config, second.access_token);
    await expect(client.fetchUserInfo(config, second.access_token, member.userId)).rejects.toThrow();
    expect(await introspect(second.access_token)).toBe(false);
  });

  it("introspection answers a client about its own tokens only", async () => {
    const member = await seedMember(t);
    const tokens = await signInToApp(await signedInBrowser(t, member));
    const mine = await client.tokenIntrospection(config, tokens.access_token);
    expect(mine).toMatchObject({ active: true, client_id: registered.clientId, sub: member.userId });
    expect(await introspect(tokens.access_token, other)).toBe(false);
  });

  it("a client's logout (RP-initiated) asks first, then signs the browser out of Latchkey and tells the other clients", async () => {
    const member = await seedMember(t);
    const browser = await signedInBrowser(t, member);
    const wiki = await signInToApp(browser);
    const otherTokens = await signInToApp(browser, other);
    const before = receiver.tokens.length;

    const url = client.buildEndSessionUrl(other, {
      id_token_hint: otherTokens.id_token!,
      post_logout_redirect_uri: "http://127.0.0.1:9/signed-out",
      state: "bye",
    });
    // "Other" registered no post-logout URI: the library refuses a redirect it does not know.
    const refused = await browser.get(url.href);
    expect(refused.statusCode).toBe(400);
    expect(refused.body).toContain("post_logout_redirect_uri not registered");

    const ask = await browser.get(
      client.buildEndSessionUrl(config, {
        id_token_hint: wiki.id_token!,
        post_logout_redirect_uri: "http://127.0.0.1:9/signed-out",
        state: "bye",
      }).href,
    );
    expect(ask.statusCode).toBe(200);
    expect(ask.body).toContain("Sign out of Latchkey?");
    expect(ask.body).toContain("from Wiki");
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(ask.body)?.[1];
    const action = /<form id="op.logoutForm" method="post" action="([^"]+)"/.exec(ask.body)?.[1];
    expect(action).toBe(`${t.origin}/oidc/session/end/confirm`);
    const confirmed = await browser.request("POST", "/oidc/session/end/confirm", { form: { xsrf: xsrf!, logout: "yes" } });
    expect(confirmed.statusCode).toBe(303);
    expect(confirmed.headers.location).toBe("http://127.0.0.1:9/signed-out?state=bye");
    // Signed out of Latchkey in this browser.
    expect((await browser.get("/api/v1/session")).statusCode).toBe(401);
    expect(await refreshError(wiki)).toBe("invalid_grant");
    expect(await refreshError(otherTokens, other)).toBe("invalid_grant");
    await t.app.oidc.settled();
    // Wiki (the one with a back-channel URI) was told once, by the provider at the logout.
    const received = await logoutTokensSince(before, member.userId);
    expect(received).toHaveLength(1);
    expectLogoutToken(received[0], member.userId, wiki);
  });

  it('"Stay signed in" at a client\'s logout keeps the Latchkey session', async () => {
    const member = await seedMember(t);
    const browser = await signedInBrowser(t, member);
    const wiki = await signInToApp(browser);
    const ask = await browser.get(client.buildEndSessionUrl(config, { id_token_hint: wiki.id_token! }).href);
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(ask.body)?.[1];
    const stayed = await browser.request("POST", "/oidc/session/end/confirm", { form: { xsrf: xsrf! } });
    expect(stayed.statusCode).toBe(303);
    expect((await browser.get("/api/v1/session")).statusCode).toBe(200);
  });

  it("an application's sign-in after another person signed in in the same browser gets the new person, who stays signed in", async () => {
    const first = await seedMember(t);
    const second = await seedMember(t);
    const browser = await signedInBrowser(t, first);
    expect((await signInToApp(browser)).claims()?.sub).toBe(first.userId);
    const home = await browser.get("/");
    await browser.request("POST", "/logout", { form: { _csrf: csrfFrom(home.body) } });
    expect((await browser.signInWithPassword(second.email, second.password)).statusCode).toBe(303);
    expect((await browser.get(t.mail.lastLink(second.email))).statusCode).toBe(303);
    const started = await authorizationUrl(config);
    const followed = await follow(browser, t.origin, started.url);
    const tokens = await exchangeCode(config, new URL(followed.leftTo!), started);
    expect(tokens.claims()?.sub).toBe(second.userId);
    expect((await browser.get("/api/v1/session")).json<{ user: { id: string } }>().user.id).toBe(second.userId);
    expect((await client.refreshTokenGrant(config, tokens.refresh_token!)).access_token).toBeTruthy();
  });
});
