import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDialect } from "./helpers/dialects.js";
import { addMembership, Browser, csrfFrom, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { enableAuthApp, passwordStep, STEP_SECONDS, submitCode, totpCode } from "./helpers/auth-app.js";
import { newId } from "../src/auth/tokens.js";

const POLICY_SUBJECT = "now requires an authenticator app";

describeEachDialect('"Require auth app" policy', (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  type Member = Awaited<ReturnType<typeof seedMember>>;

  /** An account "Strict <n>" with an admin, two email-link members, one auth-app member and one SSO member. */
  async function account() {
    const accountName = `Strict ${newId().slice(0, 6)}`;
    const admin = await seedMember(t, { role: "admin", accountName, name: "Ada Admin" });
    const seed = (name: string): Promise<Member> => seedMember(t, { accountId: admin.accountId, name });
    const [plain, plain2, withApp, sso] = [await seed("Pat Plain"), await seed("Pia Plain"), await seed("Abe App"), await seed("Sam Sso")];
    const { secret: withAppSecret } = await enableAuthApp(t, withApp);
    // Signed in while still a password member; SSO from now on (the session reads the membership live).
    const ssoBrowser = await signedInBrowser(t, sso);
    await t.ctx.db
      .updateTable("memberships")
      .set({ sign_in_method: "sso" })
      .where("user_id", "=", sso.userId)
      .where("account_id", "=", admin.accountId)
      .execute();
    return { accountName, admin, plain, plain2, withApp, withAppSecret, sso, ssoBrowser };
  }

  /** The admin with the auth app set up; returns the browser that did it (its session stays). */
  async function adminWithApp(admin: Member): Promise<Browser> {
    t.clock.advanceSeconds(STEP_SECONDS);
    return (await enableAuthApp(t, admin)).browser;
  }

  async function policyOf(accountId: string): Promise<string> {
    return (await t.ctx.db.selectFrom("accounts").select("two_factor_policy").where("id", "=", accountId).executeTakeFirstOrThrow())
      .two_factor_policy;
  }

  /** Follows 303s (at most 5) and returns every location visited plus the final response. */
  async function follow(browser: Browser, first: LightMyRequestResponse): Promise<{ hops: string[]; last: LightMyRequestResponse }> {
    const hops: string[] = [];
    let response = first;
    for (let i = 0; i < 5 && response.statusCode === 303; i++) {
      const location = response.headers.location as string;
      hops.push(location);
      response = await browser.get(location);
    }
    return { hops, last: response };
  }

  function expectSetupRedirect(response: LightMyRequestResponse, what: string): void {
    expect(response.statusCode, what).toBe(303);
    expect(response.headers.location, what).toBe("/settings/two-factor");
  }

  function expectSetupRequired(response: LightMyRequestResponse, what: string): void {
    expect(response.statusCode, what).toBe(403);
    expect(response.json().error, what).toBe("two_factor_setup_required");
    expect(response.json().message).toContain("requires an authenticator app");
  }

  it("an admin on the email link sees the control disabled with the reason and a link to set up the app; the API refuses with 409", async () => {
    const { admin } = await account();
    const browser = await signedInBrowser(t, admin);
    const page = await browser.get("/settings/security");
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain("Require auth app for all team members");
    expect(page.body).toMatch(/<button type="button" disabled[^>]*>Enable Auth App<\/button>/);
    expect(page.body).toContain("set up the auth app on your own login first");
    expect(page.body).toContain('<a href="/settings/two-factor">Set up your auth app</a>');
    expect(page.body).toContain("NIST SP 800-63B");
    expect(page.body).not.toContain('value="auth_app_required"');

    expect((await browser.get("/api/v1/policy")).json()).toMatchObject({ policy: "email_link", canRequire: false });
    const refused = await browser.request("PUT", "/api/v1/policy", { json: { policy: "auth_app_required" } });
    expect(refused.statusCode).toBe(409);
    expect(refused.json().error).toBe("policy_requires_auth_app");
    expect(refused.json().message).toContain("Set up the auth app on your own login first");
    const form = await browser.request("POST", "/settings/security/policy", {
      form: { _csrf: csrfFrom(page.body), policy: "auth_app_required" },
    });
    expect(form.statusCode).toBe(409);
    expect(form.body).toContain("Set up the auth app on your own login first");
    expect(await policyOf(admin.accountId)).toBe("email_link");
  });

  it("with the admin's app set up: counts who must set it up and SSO apart; turning it on emails only them", async () => {
    const { admin, plain, plain2, withApp, sso } = await account();
    const browser = await adminWithApp(admin);
    const page = await browser.get("/settings/security");
    expect(page.body).toContain("Turning this on sends <strong>2</strong> members without an auth app");
    expect(page.body).toContain("1 SSO member is exempt");
    expect(page.body).toContain(
      '<input type="hidden" name="policy" value="auth_app_required"><button type="submit">Enable Auth App</button>',
    );
    expect((await browser.get("/api/v1/policy")).json()).toEqual({
      policy: "email_link",
      canRequire: true,
      membersWithoutAuthApp: 2,
      ssoMembers: 1,
      passwordMembers: 4,
    });

    const sentBefore = t.mail.sent.length;
    const on = await browser.request("POST", "/settings/security/policy", {
      form: { _csrf: csrfFrom(page.body), policy: "auth_app_required" },
    });
    expect(on.statusCode).toBe(303);
    expect(on.headers.location).toBe("/settings/security?notice=on");
    expect(await policyOf(admin.accountId)).toBe("auth_app_required");
    const notices = t.mail.sent.slice(sentBefore).filter((m) => m.subject.includes(POLICY_SUBJECT));
    expect(notices.map((m) => m.to).sort()).toEqual([plain.email, plain2.email].sort());
    expect(notices[0]?.text).toContain(`${t.config.publicUrl.origin}/settings/two-factor`);
    for (const exempt of [withApp.email, sso.email, admin.email])
      expect(t.mail.sent.slice(sentBefore).some((m) => m.to === exempt)).toBe(false);

    const onPage = await browser.get("/settings/security?notice=on");
    expect(onPage.body).toContain("The auth app is now required");
    expect(onPage.body).toContain("2 of them still have to set it up");
    expect(onPage.body).toContain("Stop requiring the auth app");
    // Asking again changes nothing and emails nobody.
    const again = await browser.request("PUT", "/api/v1/policy", { json: { policy: "auth_app_required" } });
    expect(again.json()).toEqual({ policy: "auth_app_required", notified: 0 });
  });

  it("members already signed in are held at setup on their very next request; only setup, sign-out and help stay reachable; setup done, they carry on", async () => {
    const { admin, plain, withApp, withAppSecret, ssoBrowser } = await account();
    const member = await signedInBrowser(t, plain);
    const member2 = await signedInBrowser(t, plain);
    const appUser = await signedInBrowserWithApp(withApp, withAppSecret);
    expect((await member.get("/")).statusCode).toBe(200);
    const browser = await adminWithApp(admin);
    const on = await browser.request("PUT", "/api/v1/policy", { json: { policy: "auth_app_required" } });
    expect(on.statusCode).toBe(200);
    expect(on.json()).toEqual({ policy: "auth_app_required", notified: 2 });

    for (const page of ["/", "/settings", "/settings/team", "/settings/profile", "/accounts/nope", "/settings/security"])
      expectSetupRedirect(await member.get(page), page);
    for (const [method, url] of [
      ["GET", "/api/v1/verify"],
      ["GET", "/api/v1/team/members"],
      ["GET", "/api/v1/audit"],
      ["POST", "/api/v1/team/invitations"],
    ] as const) {
      expectSetupRequired(
        await member.request(method, url, method === "POST" ? { json: { email: "x@example.com", role: "member" } } : {}),
        `${method} ${url}`,
      );
    }
    // What stays reachable.
    expect((await member.get("/settings/two-factor")).statusCode).toBe(200);
    expect((await member.get("/help")).statusCode).toBe(200);
    const session = await member.get("/api/v1/session");
    expect(session.statusCode).toBe(200);
    expect(session.json().twoFactor).toEqual({ method: "email_link", setupRequired: true });
    // Sign-out works (in the second browser).
    const out = await member2.submit("/settings/two-factor", "/logout", {});
    expect(out.statusCode).toBe(303);
    expect(out.headers.location).toBe("/login?notice=signed_out");
    expect((await member2.get("/api/v1/session")).statusCode).toBe(401);

    // The auth-app member, the admin and the SSO member carry on untouched.
    expect((await appUser.get("/")).statusCode).toBe(200);
    expect((await browser.get("/settings/security")).statusCode).toBe(200);
    expect((await ssoBrowser.get("/")).statusCode).toBe(200);
    expect((await ssoBrowser.get("/api/v1/verify")).statusCode).toBe(200);
    expect((await ssoBrowser.get("/api/v1/session")).json().twoFactor).toEqual({ method: "sso", setupRequired: false });

    // Setup in the held session, then everything is open again.
    t.clock.advanceSeconds(STEP_SECONDS);
    await enableAuthApp(t, plain, member);
    expect((await member.get("/")).statusCode).toBe(200);
    expect((await member.get("/settings/team")).statusCode).toBe(200);
    const verify = await member.get("/api/v1/verify");
    expect(verify.statusCode).toBe(200);
    expect(verify.headers["x-latchkey-email"]).toBe(plain.email);
    expect((await member.get("/api/v1/session")).json().twoFactor).toEqual({ method: "auth_app", setupRequired: false });
  });

  it("a member signing in fresh goes from the email link straight to setup", async () => {
    const { admin, plain } = await account();
    const browser = await adminWithApp(admin);
    expect((await browser.request("PUT", "/api/v1/policy", { json: { policy: "auth_app_required" } })).statusCode).toBe(200);
    const fresh = new Browser(t.app);
    const password = await fresh.signInWithPassword(plain.email, plain.password);
    expect(password.headers.location).toBe("/login/email");
    const { hops, last } = await follow(fresh, await fresh.get(t.mail.lastLink(plain.email)));
    expect(hops[hops.length - 1]).toBe("/settings/two-factor");
    expect(hops.every((h) => h === "/" || h === "/settings/two-factor")).toBe(true);
    expect(last.statusCode).toBe(200);
    expect(last.body).toContain(">Enable: set up the auth app</button>");
    // No way around it over the API either.
    expectSetupRequired(await fresh.get("/api/v1/verify"), "verify");
  });

  it("the policy can be turned off again and the held member is free at once", async () => {
    const { admin, plain2 } = await account();
    const held = await signedInBrowser(t, plain2);
    const browser = await adminWithApp(admin);
    expect((await browser.request("PUT", "/api/v1/policy", { json: { policy: "auth_app_required" } })).statusCode).toBe(200);
    expectSetupRedirect(await held.get("/"), "/");
    const page = await browser.get("/settings/security");
    const off = await browser.request("POST", "/settings/security/policy", { form: { _csrf: csrfFrom(page.body), policy: "email_link" } });
    expect(off.statusCode).toBe(303);
    expect(off.headers.location).toBe("/settings/security?notice=off");
    expect((await browser.get("/settings/security?notice=off")).body).toContain("The auth app is no longer required.");
    expect(await policyOf(admin.accountId)).toBe("email_link");
    expect((await held.get("/")).statusCode).toBe(200);
    expect((await held.get("/api/v1/verify")).statusCode).toBe(200);
    expect((await held.get("/api/v1/session")).json().twoFactor.setupRequired).toBe(false);
    const changes = (await browser.get("/api/v1/audit?event=policy.changed")).json().events;
    expect(changes.map((e: { detail: unknown }) => e.detail)).toEqual(
      expect.arrayContaining([
        { from: "email_link", to: "auth_app_required" },
        { from: "auth_app_required", to: "email_link" },
      ]),
    );
  });

  it("is per account: a person in two accounts is held only while the session is on the one requiring it", async () => {
    const { admin, plain } = await account();
    const relaxed = await seedMember(t, { role: "admin", accountName: "Relaxed" });
    await addMembership(t, { userId: plain.userId, accountId: relaxed.accountId });
    const browser = await adminWithApp(admin);
    expect((await browser.request("PUT", "/api/v1/policy", { json: { policy: "auth_app_required" } })).statusCode).toBe(200);

    const person = await signedInBrowser(t, plain);
    const toRelaxed = await person.request("POST", "/api/v1/session/account", { json: { accountId: relaxed.accountId } });
    expect(toRelaxed.statusCode).toBe(200);
    let session = (await person.get("/api/v1/session")).json();
    expect(session.account).toEqual({ id: relaxed.accountId, name: "Relaxed" });
    expect(session.twoFactor.setupRequired).toBe(false);
    expect((await person.get("/")).statusCode).toBe(200);
    expect((await person.get("/api/v1/verify")).headers["x-latchkey-account-id"]).toBe(relaxed.accountId);

    // Switching to the strict account (allowed), the policy applies from the next request.
    const toStrict = await person.request("POST", "/api/v1/session/account", { json: { accountId: admin.accountId } });
    expect(toStrict.statusCode).toBe(200);
    session = (await person.get("/api/v1/session")).json();
    expect(session.account.id).toBe(admin.accountId);
    expect(session.twoFactor.setupRequired).toBe(true);
    expectSetupRequired(await person.get("/api/v1/verify"), "verify on strict");
    expectSetupRedirect(await person.get("/"), "/ on strict");
    // The picker and the switch stay reachable, so the person can go back.
    expect((await person.get("/accounts")).statusCode).toBe(200);
    const back = await person.submit("/accounts", "/accounts/switch", { accountId: relaxed.accountId });
    expect(back.statusCode).toBe(303);
    expect((await person.get("/")).statusCode).toBe(200);
    expect((await person.get("/api/v1/session")).json().account.id).toBe(relaxed.accountId);
  });

  it("turning the auth app off is refused while an account requires it, and allowed once it does not", async () => {
    const { admin } = await account();
    const browser = await adminWithApp(admin);
    expect((await browser.request("PUT", "/api/v1/policy", { json: { policy: "auth_app_required" } })).statusCode).toBe(200);
    const manage = await browser.get("/settings/two-factor");
    const refused = await browser.request("POST", "/settings/two-factor/disable", { form: { _csrf: csrfFrom(manage.body) } });
    expect(refused.statusCode).toBe(409);
    expect(refused.body).toContain("You cannot turn off the authenticator app");
    expect((await browser.get("/api/v1/two-factor")).json().method).toBe("auth_app");

    expect((await browser.request("PUT", "/api/v1/policy", { json: { policy: "email_link" } })).statusCode).toBe(200);
    const allowed = await browser.request("POST", "/settings/two-factor/disable", {
      form: { _csrf: csrfFrom((await browser.get("/settings/two-factor")).body) },
    });
    expect(allowed.statusCode).toBe(303);
    expect((await browser.get("/api/v1/two-factor")).json().method).toBe("email_link");
    // Back on the email link, the admin can no longer turn the policy on.
    expect((await browser.request("PUT", "/api/v1/policy", { json: { policy: "auth_app_required" } })).json().error).toBe(
      "policy_requires_auth_app",
    );
  });

  /** A session for an auth-app member (signed in when the app was set up). */
  async function signedInBrowserWithApp(member: Member, secret: string): Promise<Browser> {
    t.clock.advanceSeconds(STEP_SECONDS);
    const browser = await passwordStep(t, member);
    const signedIn = await submitCode(browser, totpCode(t, secret));
    if (signedIn.statusCode !== 200) throw new Error(`code sign-in failed: ${signedIn.body}`);
    return browser;
  }
});
