import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, expect, it } from "vitest";
import { connectSso } from "../src/team/sso.js";
import { ssoRedirectUri } from "../src/auth/sso-sign-in.js";
import { newId } from "../src/auth/tokens.js";
import { Browser, csrfFrom, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { codesOnPage, enableAuthApp, passwordStep, submitRecoveryCode, totpCode } from "./helpers/auth-app.js";
import { describeEachDialect } from "./helpers/dialects.js";
import { startTestIdp, type TestIdp } from "./helpers/oidc-provider.js";

/**
 * Security review, issue 7, F2: one login is a password member of one account and an SSO member of another. A session
 * opened by the other account's identity provider must never read or change the password login's factors — the
 * password, the auth app key (pending or active), recovery codes (pending or active), or the setup's state.
 *
 * The routes are taken from the app itself, so a route added later under /settings or /api/v1/two-factor is covered
 * without touching this file: it is a factor route (403 for an SSO session) unless listed below.
 */

/** What an SSO session may still open: 200, and nothing of the password login's factors on it. */
const SSO_MAY_SEE = [
  "GET /",
  "GET /settings",
  "GET /settings/profile",
  "GET /settings/team",
  // Where the person is signed in: their sessions, not a factor of the password login.
  "GET /settings/sessions",
  // The email page, which tells an SSO member their address comes from their provider (their POSTs are refused).
  "GET /settings/email",
  "GET /api/v1/session",
  "GET /api/v1/two-factor",
];

/**
 * The account's administration, not the person's factors: allowed or refused by role (this SSO person is a member,
 * so each answers 403 `forbidden` for that reason). Only checked for leaks and 5xx here.
 */
const ACCOUNT_ADMINISTRATION = [
  "POST /settings/team/invitations",
  "POST /settings/team/invitations/:id/resend",
  "POST /settings/team/invitations/:id/revoke",
  "POST /settings/team/members/:userId/role",
  "GET /settings/team/members/:userId/remove",
  "POST /settings/team/members/:userId/remove",
  "GET /settings/security",
  "POST /settings/security/policy",
  "GET /settings/audit",
];

/**
 * The person's own sessions: ending one of them (or all the others) is open to any session, SSO included — ending a
 * session is not a factor of the password login. Checked for leaks and 5xx here (their own tests: sessions.list).
 */
const OWN_SESSIONS = ["POST /settings/sessions/:id/sign-out", "POST /settings/sessions/sign-out-others"];

/** Emailed links of an email change: they work by their token in any browser, signed in or not (email-change tests). */
const EMAILED_LINKS = [
  "GET /settings/email/confirm/:token",
  "POST /settings/email/confirm/:token",
  "GET /settings/email/cancel/:token",
  "POST /settings/email/cancel/:token",
];

/** Routes about the signed-in person's sign-in: every one under these prefixes is enumerated. */
const PERSONAL_PREFIXES = ["/settings", "/api/v1/two-factor"];

/** The message of the one guard (`passwordLoginFactors`): a 403 for another reason (role, CSRF) does not count. */
const GUARD_MESSAGE = /signed in with single sign-on/;

describeEachDialect("an SSO session and the password login's factors", (dialect) => {
  let t: TestApp;
  let idp: TestIdp;
  const domain = `corp-${newId().slice(0, 6)}.example`;

  beforeAll(async () => {
    t = await startTestApp(dialect);
    idp = await startTestIdp({ redirectUri: ssoRedirectUri(t.ctx) });
    const gammaAdmin = await seedMember(t, { role: "admin", email: `it-admin@${domain}`, accountName: "Gamma (SSO)" });
    const connected = await connectSso(t.ctx, {
      accountId: gammaAdmin.accountId,
      issuer: idp.issuer,
      clientId: idp.clientId,
      clientSecret: idp.clientSecret,
      domains: [domain],
    });
    expect(connected.ok).toBe(true);
  });
  afterAll(async () => {
    await idp?.close();
    await t?.close();
  });

  /** A full SSO sign-in of `email` into Gamma through the test provider (a just-in-time SSO member). */
  async function ssoBrowser(email: string): Promise<Browser> {
    const browser = new Browser(t.app);
    const started = await browser.request("POST", "/api/v1/login/sso", { json: { domain } });
    expect(started.statusCode, started.body).toBe(200);
    idp.nextUser = { sub: `sub-${newId().slice(0, 10)}`, email, email_verified: true, name: "Sso Person" };
    const done = await browser.get(await idp.signIn(started.json<{ authorizationUrl: string }>().authorizationUrl));
    expect(done.statusCode, done.body).toBe(303);
    expect((await browser.get("/api/v1/session")).json<{ twoFactor: { method: string } }>().twoFactor.method).toBe("sso");
    return browser;
  }

  /** X: a password member of Beta, signed in there by email link (fresh proof), and the same login over Gamma's SSO. */
  async function personX(): Promise<{ member: Awaited<ReturnType<typeof seedMember>>; beta: Browser; sso: Browser }> {
    // Turning the app on or regenerating codes ends X's other sessions: tests sign in over SSO again afterwards.
    const member = await seedMember(t, { email: `x-${newId().slice(0, 8)}@${domain}`, accountName: "Beta" });
    const beta = await signedInBrowser(t, member);
    const sso = await ssoBrowser(member.email);
    return { member, beta, sso };
  }

  /** X presses Enable in Beta: ten codes are revealed, the key waits for step 2. */
  async function startSetup(beta: Browser): Promise<{ codes: string[]; codesPage: LightMyRequestResponse }> {
    const manage = await beta.get("/settings/two-factor");
    expect((await beta.request("POST", "/settings/two-factor/setup", { form: { _csrf: csrfFrom(manage.body) } })).statusCode).toBe(303);
    const codesPage = await beta.get("/settings/two-factor/setup");
    const codes = codesOnPage(codesPage.body);
    expect(codes).toHaveLength(10);
    return { codes, codesPage };
  }

  /** X confirms the codes are saved; the scan page shows the pending key. */
  async function acknowledge(beta: Browser, codesPage: LightMyRequestResponse): Promise<{ key: string; scan: LightMyRequestResponse }> {
    expect(
      (await beta.request("POST", "/settings/two-factor/setup/codes-saved", { form: { _csrf: csrfFrom(codesPage.body), saved: "yes" } }))
        .statusCode,
    ).toBe(303);
    const scan = await beta.get("/settings/two-factor/setup");
    const key = /id="manual-key"[^>]*>([A-Z2-7 ]+)</.exec(scan.body)?.[1]?.replace(/ /g, "");
    expect(key).toBeTruthy();
    return { key: key!, scan };
  }

  function personalRoutes(): string[] {
    return [...new Set(t.app.latchkeyRoutes)].filter((route) => {
      const path = route.slice(route.indexOf(" ") + 1);
      return PERSONAL_PREFIXES.some((prefix) => path === prefix || path.startsWith(`${prefix}/`));
    });
  }

  /** The secret in any of the spellings a page, a download or a URI may use. */
  function spellings(secret: string): string[] {
    const grouped = secret.replace(/(.{4})(?=.)/g, "$1 ");
    return [secret, secret.toLowerCase(), grouped, grouped.toLowerCase()];
  }

  /**
   * Every personal route (and the pages an SSO session may see) as X's SSO session: each answer is checked for the
   * secrets, and its status against its class. POSTs carry a valid CSRF token and every field any form here takes,
   * so a 403 can only come from the guard.
   */
  async function sweep(sso: Browser, x: { password: string }, secrets: string[]): Promise<Map<string, LightMyRequestResponse>> {
    const routes = [...new Set([...personalRoutes(), ...SSO_MAY_SEE])];
    const answers = new Map<string, LightMyRequestResponse>();
    for (const route of routes) {
      // Not walked: it would end X's password session in Beta, which the steps after the sweep use (it is open to
      // an SSO session by design; test/sessions.list.test.ts covers it).
      if (route === "POST /settings/sessions/sign-out-others") continue;
      const [method, pattern] = route.split(" ") as ["GET" | "POST" | "PUT" | "PATCH" | "DELETE", string];
      const url = pattern.replace(/:[A-Za-z]+/g, newId());
      const csrf = csrfFrom((await sso.get("/settings/profile")).body);
      const fields = {
        _csrf: csrf,
        currentPassword: x.password,
        newPassword: "a whole new passphrase here",
        password: x.password,
        next: "/settings/two-factor",
        saved: "yes",
        code: "123456",
      };
      const response =
        method === "GET"
          ? await sso.get(url)
          : url.startsWith("/api/")
            ? await sso.request(method, url, { json: {} })
            : await sso.request(method, url, { form: fields });
      answers.set(route, response);
      const where = `${route}: ${response.statusCode} ${response.body.slice(0, 300)}`;
      for (const secret of secrets)
        for (const spelling of spellings(secret)) expect(response.body.includes(spelling), `${where} shows a secret`).toBe(false);
      if (SSO_MAY_SEE.includes(route)) {
        expect(response.statusCode, where).toBe(200);
        // The team page lists every member's method (X's own row says SSO); the sessions page says how each of X's
        // sessions signed in (X's password session in Beta too) — facts about sessions, not a factor to manage. The
        // others say nothing of a method.
        if (route !== "GET /settings/team" && route !== "GET /settings/sessions")
          expect(response.body, where).not.toMatch(/recovery code|Auth app|Email link|otpauth:/i);
      } else if (ACCOUNT_ADMINISTRATION.includes(route) || OWN_SESSIONS.includes(route) || EMAILED_LINKS.includes(route)) {
        expect(response.statusCode, where).toBeLessThan(500);
      } else {
        expect(response.statusCode, where).toBe(403);
        if (url.startsWith("/api/")) expect(response.json<{ error: string }>().error, where).toBe("forbidden");
        expect(response.body, where).toMatch(GUARD_MESSAGE);
      }
    }
    return answers;
  }

  it("an SSO session can neither download the pending recovery codes nor read the pending key of the person's password login", async () => {
    const { member, beta, sso } = await personX();
    const { codes, codesPage } = await startSetup(beta);
    // The reported path: download the codes, confirm "saved" for the person, then read the key from the setup page.
    const download = await sso.get("/settings/two-factor/recovery-codes.txt");
    expect(download.statusCode).toBe(403);
    for (const code of codes) expect(download.body).not.toContain(code);
    const profile = await sso.get("/settings/profile");
    const saved = await sso.request("POST", "/settings/two-factor/setup/codes-saved", {
      form: { _csrf: csrfFrom(profile.body), saved: "yes" },
    });
    expect(saved.statusCode).toBe(403);
    const setup = await t.ctx.db
      .selectFrom("totp_setups")
      .select("codes_acknowledged_at")
      .where("user_id", "=", member.userId)
      .executeTakeFirstOrThrow();
    expect(setup.codes_acknowledged_at).toBeNull();

    const { key } = await acknowledge(beta, codesPage);
    const scan = await sso.get("/settings/two-factor/setup");
    expect(scan.statusCode).toBe(403);
    for (const spelling of spellings(key)) expect(scan.body).not.toContain(spelling);
    expect(scan.body).not.toContain("otpauth:");
    // Nor can it throw the person's codes away before they are saved.
    const done = await sso.request("POST", "/settings/two-factor/recovery-codes/done", { form: { _csrf: csrfFrom(profile.body) } });
    expect(done.statusCode).toBe(403);
    expect(
      await t.ctx.db.selectFrom("recovery_code_reveals").select("user_id").where("user_id", "=", member.userId).execute(),
    ).toHaveLength(1);
  });

  it("every personal settings route refuses an SSO session with 403 and never shows the pending key or codes", async () => {
    const routes = personalRoutes();
    // The enumeration found the routes of the finding (a broken collector must not make this pass).
    for (const known of [
      "GET /settings/two-factor/recovery-codes.txt",
      "GET /settings/two-factor/setup",
      "POST /settings/two-factor/setup/codes-saved",
      "POST /settings/confirm-password",
    ]) {
      expect(routes).toContain(known);
    }
    const { member, beta, sso } = await personX();

    // Step 1: codes revealed, not yet saved.
    const { codes, codesPage } = await startSetup(beta);
    await sweep(sso, member, codes);
    const step1 = await t.ctx.db
      .selectFrom("totp_setups")
      .select("codes_acknowledged_at")
      .where("user_id", "=", member.userId)
      .executeTakeFirstOrThrow();
    expect(step1.codes_acknowledged_at).toBeNull();

    // Step 2: the key is shown to X; the SSO session still sees none of it, and X's setup is intact.
    const { key, scan } = await acknowledge(beta, codesPage);
    await sweep(sso, member, [key, ...codes]);
    expect(
      (await beta.request("POST", "/settings/two-factor/setup/confirm", { form: { _csrf: csrfFrom(scan.body), code: totpCode(t, key) } }))
        .statusCode,
    ).toBe(200);

    // Auth app on, codes just regenerated (a fresh reveal): still nothing, and the app stays on.
    const manage = await beta.get("/settings/two-factor");
    expect((await beta.request("POST", "/settings/two-factor/recovery-codes", { form: { _csrf: csrfFrom(manage.body) } })).statusCode).toBe(
      303,
    );
    const fresh = codesOnPage((await beta.get("/settings/two-factor/recovery-codes")).body);
    expect(fresh).toHaveLength(10);
    // Both changes ended X's other sessions, the SSO one too: the provider signs X in again.
    const ssoAgain = await ssoBrowser(member.email);
    const answers = await sweep(ssoAgain, member, [key, ...codes, ...fresh]);
    expect(answers.get("GET /api/v1/two-factor")?.json()).toEqual({
      method: "sso",
      enabledAt: null,
      recoveryCodesRemaining: 0,
      requiredBy: [],
      freshProof: false,
    });
    const user = await t.ctx.db.selectFrom("users").select("two_factor_method").where("id", "=", member.userId).executeTakeFirstOrThrow();
    expect(user.two_factor_method).toBe("auth_app");
    expect(
      await t.ctx.db.selectFrom("recovery_code_reveals").select("user_id").where("user_id", "=", member.userId).execute(),
    ).toHaveLength(1);
    // X's own session in Beta was not touched by any of it.
    expect((await beta.get("/api/v1/session")).statusCode).toBe(200);
  });

  it("an SSO session's home page says nothing of the password login's recovery codes, even when few are left", async () => {
    const { member, beta } = await personX();
    const { codesPage } = await startSetup(beta);
    const { key, scan } = await acknowledge(beta, codesPage);
    expect(
      (await beta.request("POST", "/settings/two-factor/setup/confirm", { form: { _csrf: csrfFrom(scan.body), code: totpCode(t, key) } }))
        .statusCode,
    ).toBe(200);
    const all = await t.ctx.db.selectFrom("recovery_codes").select("id").where("user_id", "=", member.userId).execute();
    const spent = all.slice(0, all.length - t.config.limits.recoveryCodesLowWarning + 1).map((r) => r.id);
    await t.ctx.db.updateTable("recovery_codes").set({ used_at: t.clock.now() }).where("id", "in", spent).execute();
    // X's own home page in Beta warns (so the state is the one that would show)…
    expect((await beta.get("/")).body).toMatch(/recovery codes? left/);
    // …the SSO session's does not.
    const home = await (await ssoBrowser(member.email)).get("/");
    expect(home.statusCode).toBe(200);
    expect(home.body).not.toMatch(/recovery code/i);
  });

  it("an SSO admin's right to require the auth app does not depend on the person's password login elsewhere", async () => {
    const { member, beta } = await personX();
    const { codesPage } = await startSetup(beta);
    const { key, scan } = await acknowledge(beta, codesPage);
    expect(
      (await beta.request("POST", "/settings/two-factor/setup/confirm", { form: { _csrf: csrfFrom(scan.body), code: totpCode(t, key) } }))
        .statusCode,
    ).toBe(200);
    const sso = await ssoBrowser(member.email);
    const gamma = (await sso.get("/api/v1/session")).json<{ account: { id: string } }>().account.id;
    await t.ctx.db
      .updateTable("memberships")
      .set({ role: "admin" })
      .where("user_id", "=", member.userId)
      .where("account_id", "=", gamma)
      .execute();
    // The password login's auth app would tell an SSO session "true" here: one bit of its factors.
    expect((await sso.get("/api/v1/policy")).json<{ canRequire: boolean }>().canRequire).toBe(false);
    const required = await sso.request("PUT", "/api/v1/policy", { json: { policy: "auth_app_required" } });
    expect(required.statusCode).toBe(409);
    expect(required.json<{ error: string; message: string }>()).toMatchObject({
      error: "policy_requires_auth_app",
      message: expect.stringMatching(GUARD_MESSAGE),
    });
  });

  it("an SSO session cannot confirm the password login's password (no fresh proof from it)", async () => {
    const { member, sso } = await personX();
    const profile = await sso.get("/settings/profile");
    const confirmed = await sso.request("POST", "/settings/confirm-password", {
      form: { _csrf: csrfFrom(profile.body), password: member.password },
    });
    expect(confirmed.statusCode).toBe(403);
    const events = await t.ctx.db
      .selectFrom("audit_events")
      .select("type")
      .where("user_id", "=", member.userId)
      .where("type", "=", "session.reauthenticated")
      .execute();
    expect(events).toEqual([]);
  });

  /**
   * One login, a password member of a vendor account (with the auth app) and an SSO member of the corp account. The
   * corp's identity provider (or whoever controls it) signs in as that person: the SSO session must not manage the
   * password login's factors — neither take over its second factor nor lock the person out.
   */
  async function personInBoth(): Promise<{
    member: Awaited<ReturnType<typeof seedMember>>;
    app: Awaited<ReturnType<typeof enableAuthApp>>;
    sso: Browser;
  }> {
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
    const changed = await sso.submit("/settings/password", "/settings/password", {
      currentPassword: member.password,
      newPassword: "a whole new passphrase here",
    });
    expect(changed.statusCode).toBe(403);
    expect((await vendor.get("/api/v1/session")).statusCode).toBe(200);
    expect((await new Browser(t.app).signInWithPassword(member.email, member.password)).statusCode).toBe(303);
  });
});
