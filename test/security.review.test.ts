import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { connectSso } from "../src/team/sso.js";
import { ssoRedirectUri } from "../src/auth/sso-sign-in.js";
import { newId, newToken } from "../src/auth/tokens.js";
import { redactUrl } from "../src/http/request-info.js";
import type { MailMessage } from "../src/mail/mailer.js";
import { Browser, csrfFrom, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { codesOnPage, enableAuthApp, passwordStep, submitRecoveryCode } from "./helpers/auth-app.js";
import { describeEachDialect } from "./helpers/dialects.js";
import { startTestIdp, type TestIdp } from "./helpers/oidc-provider.js";

/**
 * Findings of the security review, each a test that failed before its fix. Both dialects: the PostgreSQL half is
 * where NUL bytes and races show.
 */
describeEachDialect("security review", (dialect) => {
    let t: TestApp;
    let idp: TestIdp;
    let ssoAccountId: string;
    const domain = `corp-${newId().slice(0, 6)}.example`;

    beforeAll(async () => {
      t = await startTestApp(dialect);
      idp = await startTestIdp({ redirectUri: ssoRedirectUri(t.ctx) });
      const ssoAdmin = await seedMember(t, { role: "admin", email: `it-admin@${domain}`, accountName: "Corp (SSO)" });
      ssoAccountId = ssoAdmin.accountId;
      const connected = await connectSso(t.ctx, { accountId: ssoAccountId, issuer: idp.issuer, clientId: idp.clientId, clientSecret: idp.clientSecret, domains: [domain] });
      expect(connected.ok).toBe(true);
    });
    afterAll(async () => {
      await idp?.close();
      await t?.close();
    });

    /** A full SSO sign-in of `email` into the SSO account through the test provider; returns the signed-in browser. */
    async function ssoBrowser(email: string): Promise<Browser> {
      const browser = new Browser(t.app);
      const started = await browser.request("POST", "/api/v1/login/sso", { json: { domain } });
      expect(started.statusCode, started.body).toBe(200);
      idp.nextUser = { sub: `sub-${newId().slice(0, 10)}`, email, email_verified: true, name: "Sso Person" };
      const callback = await idp.signIn(started.json<{ authorizationUrl: string }>().authorizationUrl);
      const done = await browser.get(callback);
      expect(done.statusCode, done.body).toBe(303);
      const session = await browser.get("/api/v1/session");
      expect(session.json<{ twoFactor: { method: string } }>().twoFactor.method).toBe("sso");
      return browser;
    }

    /**
     * One login, a password member of a vendor account (with the auth app) and an SSO member of the corp account. The
     * corp's identity provider (or whoever controls it) signs in as that person: the SSO session must not manage the
     * password login's factors — neither take over its second factor nor lock the person out.
     */
    async function personInBoth(): Promise<{ member: Awaited<ReturnType<typeof seedMember>>; app: Awaited<ReturnType<typeof enableAuthApp>>; sso: Browser }> {
      const member = await seedMember(t, { email: `person-${newId().slice(0, 8)}@${domain}`, accountName: "Vendor" });
      const app = await enableAuthApp(t, member);
      const sso = await ssoBrowser(member.email);
      return { member, app, sso };
    }

    it("an SSO session cannot regenerate the recovery codes of the person's password login", async () => {
      const { member, app, sso } = await personInBoth();
      const manage = await sso.get("/settings/two-factor");
      const regenerated = await sso.request("POST", "/settings/two-factor/recovery-codes", { form: { _csrf: csrfFrom(manage.body) } });
      expect(regenerated.statusCode).toBe(403);
      const shown = await sso.get("/settings/two-factor/recovery-codes");
      expect(codesOnPage(shown.body)).toEqual([]);
      // The person's own codes still work at the password sign-in.
      const challenge = await passwordStep(t, member);
      expect((await submitRecoveryCode(challenge, app.codes[0])).statusCode).toBe(200);
    });

    it("an SSO session cannot turn off, or set up, the auth app of the person's password login", async () => {
      const { member, app, sso } = await personInBoth();
      const manage = await sso.get("/settings/two-factor");
      const disabled = await sso.request("POST", "/settings/two-factor/disable", { form: { _csrf: csrfFrom(manage.body) } });
      expect(disabled.statusCode).toBe(403);
      const user = await t.ctx.db.selectFrom("users").select("two_factor_method").where("id", "=", member.userId).executeTakeFirstOrThrow();
      expect(user.two_factor_method).toBe("auth_app");
      // The person's session in the vendor account was not ended either.
      expect((await app.browser.get("/api/v1/session")).statusCode).toBe(200);

      const other = await seedMember(t, { email: `email-${newId().slice(0, 8)}@${domain}`, accountName: "Vendor 2" });
      const otherSso = await ssoBrowser(other.email);
      const page = await otherSso.get("/settings/two-factor");
      const started = await otherSso.request("POST", "/settings/two-factor/setup", { form: { _csrf: csrfFrom(page.body) } });
      expect(started.statusCode).toBe(403);
      const setups = await t.ctx.db.selectFrom("totp_setups").select("user_id").where("user_id", "=", other.userId).execute();
      expect(setups).toEqual([]);
    });

    it("an SSO session cannot change the password of the person's password login", async () => {
      const member = await seedMember(t, { email: `pw-${newId().slice(0, 8)}@${domain}`, accountName: "Vendor 3" });
      const vendor = await signedInBrowser(t, member);
      const sso = await ssoBrowser(member.email);
      const changed = await sso.submit("/settings/password", "/settings/password", { currentPassword: member.password, newPassword: "a whole new passphrase here" });
      expect(changed.statusCode).toBe(403);
      expect((await vendor.get("/api/v1/session")).statusCode).toBe(200);
      expect((await new Browser(t.app).signInWithPassword(member.email, member.password)).statusCode).toBe(303);
    });

    it("regenerating recovery codes ends the person's other sessions (a credential change)", async () => {
      const member = await seedMember(t, { accountName: "Regen" });
      const app = await enableAuthApp(t, member);
      // Someone signed in elsewhere with one of the old codes.
      const elsewhere = await passwordStep(t, member);
      expect((await submitRecoveryCode(elsewhere, app.codes[0])).statusCode).toBe(200);
      expect((await elsewhere.get("/api/v1/session")).statusCode).toBe(200);
      const manage = await app.browser.get("/settings/two-factor");
      expect((await app.browser.request("POST", "/settings/two-factor/recovery-codes", { form: { _csrf: csrfFrom(manage.body) } })).statusCode).toBe(303);
      expect((await elsewhere.get("/api/v1/session")).statusCode).toBe(401);
      expect((await app.browser.get("/api/v1/session")).statusCode).toBe(200);
    });

    it("a support message with a NUL byte is refused with a 4xx whether or not the address has a login", async () => {
      const member = await seedMember(t, { accountName: "Support" });
      for (const email of [member.email, `nobody-${newId().slice(0, 8)}@example.com`]) {
        const b = new Browser(t.app);
        const response = await b.submit("/support", "/support", { email, message: "lost my phone\u0000" });
        expect(response.statusCode, `${email}: ${response.body.slice(0, 200)}`).toBe(400);
      }
      // Ordinary line breaks stay allowed.
      const ok = await new Browser(t.app).submit("/support", "/support", { email: member.email, message: "Lost my phone.\r\nCall me\tplease." });
      expect(ok.statusCode).toBe(200);
    });

    it("/support answers before the email is sent, so a slow mail server does not tell registered addresses apart", async () => {
      const member = await seedMember(t, { accountName: "Support timing" });
      const original = t.ctx.mailer;
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const held: MailMessage[] = [];
      t.ctx.mailer = {
        async send(message) {
          held.push(message);
          await gate;
        },
        async close() {},
      };
      try {
        const b = new Browser(t.app);
        const page = await b.get("/support");
        const answer = await Promise.race([
          b.request("POST", "/support", { form: { _csrf: csrfFrom(page.body), email: member.email, message: "" } }),
          new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), 2000)),
        ]);
        expect(answer === "timeout" ? "timeout" : answer.statusCode).toBe(200);
        // The confirmation email is sent after the answer, and the held mail server does not hold the answer up.
        await vi.waitFor(() => expect(held.map((m) => m.to)).toEqual([member.email]));
      } finally {
        release();
        await t.app.afterResponse.settled();
        t.ctx.mailer = original;
      }
    });

    it("the 127.0.0.1 → localhost redirect keeps the request on the public host (no open redirect)", async () => {
      for (const url of ["//evil.example/login", "/\\evil.example/login", "///evil.example/?next=x"]) {
        const response = await t.app.inject({ method: "GET", url, headers: { host: "127.0.0.1:3000" } });
        expect(response.statusCode, url).toBe(308);
        expect(new URL(response.headers.location as string).origin, url).toBe(t.config.publicUrl.origin);
      }
      const kept = await t.app.inject({ method: "GET", url: "/login?notice=signed_out", headers: { host: "127.0.0.1:3000" } });
      expect(kept.headers.location).toBe(`${t.config.publicUrl.origin}/login?notice=signed_out`);
    });

    it("an identity provider's email with a control character is refused, never a 500", async () => {
      const browser = new Browser(t.app);
      const started = await browser.request("POST", "/api/v1/login/sso", { json: { domain } });
      idp.nextUser = { sub: `sub-${newId().slice(0, 10)}`, email: `bad\u0000name@${domain}`, email_verified: true };
      const done = await browser.get(await idp.signIn(started.json<{ authorizationUrl: string }>().authorizationUrl));
      expect(done.statusCode, done.body.slice(0, 300)).toBe(401);
    });
});

describe("request logs", () => {
  it("carry no live token: link tokens in paths and the OIDC code and state are redacted", () => {
    const token = newToken();
    for (const path of ["/login/email/", "/invite/", "/setup/", "/support/confirm/", "/support/cancel/"]) {
      expect(redactUrl(`${path}${token}`)).toBe(`${path}[redacted]`);
    }
    expect(redactUrl(`/sso/callback?code=abc.def&state=${token}&iss=https%3A%2F%2Fidp`)).toBe("/sso/callback?code=[redacted]&state=[redacted]&iss=https%3A%2F%2Fidp");
    expect(redactUrl("/settings/two-factor/recovery-codes?notice=codes_done")).toBe("/settings/two-factor/recovery-codes?notice=codes_done");
    expect(redactUrl("/settings/team/members/0123456789abcdef0123456789abcdef/remove")).toBe("/settings/team/members/0123456789abcdef0123456789abcdef/remove");
  });
});
