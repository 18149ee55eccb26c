import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, expect, it } from "vitest";
import { trustedDevice } from "../src/auth/devices.js";
import { newId } from "../src/auth/tokens.js";
import { addMembership, Browser, csrfFrom, rowCounts, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { enableAuthApp, passwordStep, STEP_SECONDS, submitCode, totpCode, wrongCode } from "./helpers/auth-app.js";
import { describeEachDialect } from "./helpers/dialects.js";

const NEW_PASSWORD = "a completely new passphrase";
const TABLES = ["users", "sessions", "challenges", "password_resets", "recovery_codes", "audit_events", "attempt_counters"] as const;

describeEachDialect("forgot password", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    // The per-IP limit has its own suite (password-reset.limits): here every request comes from 127.0.0.1.
    t = await startTestApp(dialect, { limits: { passwordResetRequestsPerIp: 10_000 } });
  });
  afterAll(async () => {
    await t?.close();
  });

  type Member = Awaited<ReturnType<typeof seedMember>>;

  /** POST /api/v1/password-reset, then the work after the answer; returns the answer. */
  async function askForLink(email: string): Promise<LightMyRequestResponse> {
    const response = await new Browser(t.app).request("POST", "/api/v1/password-reset", { json: { email } });
    await t.app.afterResponse.settled();
    return response;
  }

  /** A fresh link for `member`: the token of the newest reset email to them. */
  async function resetToken(member: { email: string }): Promise<string> {
    expect((await askForLink(member.email)).statusCode).toBe(202);
    const link = t.mail.lastLink(member.email);
    expect(link).toMatch(new RegExp(`^${t.config.publicUrl.origin}/login/reset/[A-Za-z0-9_-]{43}$`));
    return new URL(link).pathname.split("/").pop() as string;
  }

  function confirm(body: unknown): Promise<LightMyRequestResponse> {
    return new Browser(t.app).request("POST", "/api/v1/password-reset/confirm", { json: body });
  }

  async function passwordHash(userId: string): Promise<string | null> {
    return (await t.ctx.db.selectFrom("users").select("password_hash").where("id", "=", userId).executeTakeFirstOrThrow()).password_hash;
  }

  async function events(userId: string, type: string): Promise<Array<{ account_id: string | null; detail: string }>> {
    return t.ctx.db
      .selectFrom("audit_events")
      .select(["account_id", "detail"])
      .where("user_id", "=", userId)
      .where("type", "=", type)
      .execute();
  }

  async function canSignIn(member: { email: string }, password: string): Promise<string | null> {
    const response = await new Browser(t.app).request("POST", "/api/v1/login", { json: { email: member.email, password } });
    return response.statusCode === 200 ? (response.json() as { next: string }).next : null;
  }

  async function refused(member: Member, body: Record<string, unknown>): Promise<LightMyRequestResponse> {
    const before = await rowCounts(t, TABLES);
    const hash = await passwordHash(member.userId);
    const response = await confirm(body);
    expect(await passwordHash(member.userId)).toBe(hash);
    // Link tries and code counters may move (they are what limits guessing); nothing else does.
    const after = await rowCounts(t, TABLES);
    expect({ ...after, attempt_counters: 0, audit_events: 0 }).toEqual({ ...before, attempt_counters: 0, audit_events: 0 });
    return response;
  }

  // ---- an email-link user, through the pages ----

  it("an email-link user: sign-in page → form → email → new password; sessions end, nobody is signed in, notice and audit", async () => {
    const member = await seedMember(t, { name: "Grace Hopper" });
    const second = await seedMember(t, { accountName: "Second Co" });
    // The same person in a second account: the event goes to both logs.
    await addMembership(t, { userId: member.userId, accountId: second.accountId });
    const signedIn = await signedInBrowser(t, member);
    const deviceCookie = signedIn.cookies.get("latchkey_device");
    expect(deviceCookie).toBeDefined();
    const halfway = new Browser(t.app);
    await halfway.signInWithPassword(member.email, member.password);
    const pendingLink = t.mail.lastLink(member.email);

    const browser = new Browser(t.app);
    const login = await browser.get("/login");
    expect(login.body).toContain('<a href="/login/forgot">Forgot your password?</a>');
    const form = await browser.get("/login/forgot");
    expect(form.statusCode).toBe(200);
    expect(form.body).toContain('<label for="f-email">Email</label>');
    const sentBefore = t.mail.sent.length;
    const answer = await browser.request("POST", "/login/forgot", {
      form: { _csrf: csrfFrom(form.body), email: member.email.toUpperCase() },
    });
    await t.app.afterResponse.settled();
    expect(answer.statusCode).toBe(200);
    expect(answer.body).toContain("If an account uses this address, we sent a link");
    expect(t.mail.sent.length).toBe(sentBefore + 1);
    const mail = t.mail.last(member.email)!;
    expect(mail.subject).toBe("Reset your Latchkey password");
    expect(mail.text).toContain("expires in 30 minutes");
    expect(mail.text).not.toContain("authenticator app");

    // Any browser: a new one, without any cookie of the request's.
    const elsewhere = new Browser(t.app);
    const link = t.mail.lastLink(member.email);
    const page = await elsewhere.get(link);
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain("<h1>Choose a new password</h1>");
    expect(page.body).toContain(member.email);
    expect(page.body).toContain('autocomplete="new-password"');
    expect(page.body).not.toContain("Authentication code");
    const action = new URL(link).pathname;
    expect(page.body).toContain(`action="${action}"`);

    const weak = await elsewhere.request("POST", action, { form: { _csrf: csrfFrom(page.body), password: "password1" } });
    expect(weak.statusCode).toBe(422);
    expect(weak.body).toContain('aria-invalid="true"');
    expect(weak.body).toMatch(/id="f-password"[^>]*autofocus/);

    const done = await elsewhere.request("POST", action, { form: { _csrf: csrfFrom(page.body), password: NEW_PASSWORD } });
    expect(done.statusCode).toBe(303);
    expect(done.headers.location).toBe("/login?notice=password_reset");
    // No session for anyone: the reset signs nobody in.
    expect(elsewhere.cookies.has("latchkey_session")).toBe(false);
    expect((await elsewhere.get("/api/v1/session")).statusCode).toBe(401);
    const signInPage = await elsewhere.get("/login?notice=password_reset");
    expect(signInPage.body).toContain("Your new password is set");
    // The sign-in page has the address filled in (kept in a cookie of this browser, once, as after an invitation).
    expect(signInPage.body).toContain(`<input id="f-email" name="email" type="email" value="${member.email}"`);

    // Every session and pending sign-in of the person ended; the old password and the old device cookie are worthless.
    expect((await signedIn.get("/api/v1/session")).statusCode).toBe(401);
    expect((await halfway.get(pendingLink)).statusCode).toBe(401);
    const user = await t.ctx.db
      .selectFrom("users")
      .select(["id", "password_hash"])
      .where("id", "=", member.userId)
      .executeTakeFirstOrThrow();
    expect(trustedDevice(t.ctx, deviceCookie, { id: user.id, passwordHash: user.password_hash })).toBeNull();
    expect(await canSignIn(member, member.password)).toBeNull();
    // Signs in as usual: the new password, then the emailed link.
    expect(await canSignIn(member, NEW_PASSWORD)).toBe("email_link");
    await signedInBrowser(t, { email: member.email, password: NEW_PASSWORD });

    const notice = t.mail.sent.find((m) => m.to === member.email && m.subject === "Latchkey: Your password was reset")!;
    expect(notice.text).toContain("reset with a link sent to this address");
    expect(notice.text).toContain("If this was not you, someone can read your email");
    const reset = await events(member.userId, "password.reset");
    expect(reset.map((e) => e.account_id).sort()).toEqual([member.accountId, second.accountId].sort());
    expect(JSON.parse(reset[0]!.detail)).toMatchObject({ secondFactor: "email_link" });
    expect(await events(member.userId, "password.reset_requested")).toHaveLength(2);
    // The link is spent.
    expect((await elsewhere.get(link)).statusCode).toBe(410);
  });

  it("a used, expired, superseded, unknown or malformed link gets a page that says so, with no form", async () => {
    const member = await seedMember(t);
    const browser = new Browser(t.app);

    const used = await resetToken(member);
    expect((await confirm({ token: used, password: NEW_PASSWORD })).statusCode).toBe(204);
    const older = await resetToken(member);
    const newer = await resetToken(member);
    expect(newer).not.toBe(older);

    const pages: Array<[string, number, string]> = [
      [used, 410, "This link was already used"],
      [older, 400, "a newer one was sent"],
      ["A".repeat(43), 400, "This link does not work"],
      ["not-a-token", 400, "This link does not work"],
      ["..%2F..%2Fsettings%2Fpassword", 400, "This link does not work"],
    ];
    for (const [token, status, text] of pages) {
      const page = await browser.get(`/login/reset/${token}`);
      expect(page.statusCode, token).toBe(status);
      expect(page.body, token).toContain(text);
      expect(page.body, token).not.toContain("<form");
      expect(page.body, token).toContain('href="/login/forgot"');
    }
    t.clock.advanceSeconds(30 * 60);
    const expired = await browser.get(`/login/reset/${newer}`);
    expect(expired.statusCode).toBe(410);
    expect(expired.body).toContain("This link has expired");
    expect(expired.body).toContain("links work for 30 minutes");
    expect(expired.body).not.toContain("<form");
    // The API says the same with stable codes, and changes nothing.
    expect((await refused(member, { token: used, password: NEW_PASSWORD })).json()).toMatchObject({ error: "link_used" });
    expect((await refused(member, { token: newer, password: NEW_PASSWORD })).json()).toMatchObject({ error: "link_expired" });
    expect((await refused(member, { token: older, password: NEW_PASSWORD })).json()).toMatchObject({ error: "link_invalid" });
    expect((await refused(member, { token: "x", password: NEW_PASSWORD })).json()).toMatchObject({ error: "link_invalid" });
  });

  it("a link valid for 29 minutes 59 seconds and not at 30 minutes", async () => {
    const member = await seedMember(t);
    const token = await resetToken(member);
    t.clock.advanceSeconds(30 * 60 - 1);
    expect((await new Browser(t.app).get(`/login/reset/${token}`)).statusCode).toBe(200);
    t.clock.advanceSeconds(1);
    expect((await refused(member, { token, password: NEW_PASSWORD })).statusCode).toBe(410);
  });

  it("another kind of token (a sign-in link's, another address's email) does not reset anything", async () => {
    const member = await seedMember(t);
    const browser = new Browser(t.app);
    await browser.signInWithPassword(member.email, member.password);
    const signInToken = new URL(t.mail.lastLink(member.email)).pathname.split("/").pop() as string;
    const response = await refused(member, { token: signInToken, password: NEW_PASSWORD });
    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({ error: "link_invalid" });
  });

  it("a password change in a session voids a reset link asked for before", async () => {
    const member = await seedMember(t);
    const token = await resetToken(member);
    const browser = await signedInBrowser(t, member);
    const page = await browser.get("/settings/password");
    const changed = await browser.request("POST", "/settings/password", {
      form: { _csrf: csrfFrom(page.body), currentPassword: member.password, newPassword: "changed in the session" },
    });
    expect(changed.statusCode).toBe(303);
    expect((await confirm({ token, password: NEW_PASSWORD })).json()).toMatchObject({ error: "link_invalid" });
    expect(await canSignIn(member, "changed in the session")).toBe("email_link");
  });

  it("a confirmed change of email address voids a reset link sent to the old address", async () => {
    const member = await seedMember(t);
    const token = await resetToken(member);
    const browser = await signedInBrowser(t, member);
    const target = `moved-${newId().slice(0, 8)}@example.org`;
    const form = await browser.get("/settings/email");
    expect((await browser.request("POST", "/settings/email", { form: { _csrf: csrfFrom(form.body), email: target } })).statusCode).toBe(
      303,
    );
    const link = t.mail.lastLink(target);
    const page = await browser.get(link);
    expect((await browser.request("POST", link, { form: { _csrf: csrfFrom(page.body) } })).statusCode).toBeLessThan(400);
    expect((await t.ctx.db.selectFrom("users").select("email").where("id", "=", member.userId).executeTakeFirstOrThrow()).email).toBe(
      target,
    );
    expect((await confirm({ token, password: NEW_PASSWORD })).json()).toMatchObject({ error: "link_invalid" });
  });

  it("a reset cancels a pending change of email address: its link from the new inbox no longer works", async () => {
    const member = await seedMember(t);
    const browser = await signedInBrowser(t, member);
    const target = `hijack-${newId().slice(0, 8)}@example.org`;
    const form = await browser.get("/settings/email");
    expect((await browser.request("POST", "/settings/email", { form: { _csrf: csrfFrom(form.body), email: target } })).statusCode).toBe(
      303,
    );
    const link = t.mail.lastLink(target);
    const token = await resetToken(member);
    expect((await confirm({ token, password: NEW_PASSWORD })).statusCode).toBe(204);
    const late = await new Browser(t.app).get(link);
    expect(late.statusCode).toBe(400);
    expect(late.body).toContain("was cancelled");
    expect((await t.ctx.db.selectFrom("users").select("email").where("id", "=", member.userId).executeTakeFirstOrThrow()).email).toBe(
      member.email,
    );
  });

  it("applications signed in as the person are ended (the logout sweep tells them)", async () => {
    const member = await seedMember(t);
    const browser = await signedInBrowser(t, member);
    const session = await t.ctx.db.selectFrom("sessions").select("id").where("user_id", "=", member.userId).executeTakeFirstOrThrow();
    const grantId = newId();
    await t.ctx.db
      .insertInto("oidc_grants")
      .values({
        grant_id: grantId,
        session_id: session.id,
        user_id: member.userId,
        account_id: member.accountId,
        client_id: "client",
        sid: newId(),
        created_at: t.clock.now(),
        ended_at: null,
      })
      .execute();
    const token = await resetToken(member);
    expect((await confirm({ token, password: NEW_PASSWORD })).statusCode).toBe(204);
    expect((await browser.get("/api/v1/session")).statusCode).toBe(401);
    const grant = await t.ctx.db.selectFrom("oidc_grants").select("ended_at").where("grant_id", "=", grantId).executeTakeFirst();
    // Either already swept (the row is claimed by deleting it) or marked ended for the sweep.
    expect(grant === undefined || grant.ended_at !== null).toBe(true);
  });

  it("unlocks a sign-in paused by wrong passwords for the address: the person signs in at once", async () => {
    const member = await seedMember(t);
    for (let i = 0; i < t.config.limits.passwordFailuresPerEmail; i++) await canSignIn(member, "wrong password guess");
    const paused = await new Browser(t.app).request("POST", "/api/v1/login", { json: { email: member.email, password: member.password } });
    expect(paused.statusCode).toBe(429);
    const token = await resetToken(member);
    expect((await confirm({ token, password: NEW_PASSWORD })).statusCode).toBe(204);
    expect(await canSignIn(member, NEW_PASSWORD)).toBe("email_link");
  });

  // ---- an auth-app user, through the API ----

  it("an auth-app user: no new password without a right code; a right code sets it and ends the sessions", async () => {
    const member = await seedMember(t);
    const { browser: signedIn, secret } = await enableAuthApp(t, member);
    t.clock.advanceSeconds(STEP_SECONDS);
    const token = await resetToken(member);
    expect(t.mail.last(member.email)!.text).toContain("Have your authenticator app at hand");

    const page = await new Browser(t.app).get(`/login/reset/${token}`);
    expect(page.body).toContain('<label for="f-code">Authentication code</label>');
    expect(page.body).toContain('<label for="f-recoveryCode">Recovery code</label>');

    const missing = await refused(member, { token, password: NEW_PASSWORD });
    expect(missing.statusCode).toBe(409);
    expect(missing.json()).toMatchObject({ error: "auth_app_required" });
    const wrong = await refused(member, { token, password: NEW_PASSWORD, code: wrongCode(t, secret) });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json()).toMatchObject({ error: "invalid_code", details: { attemptsLeft: 4 } });
    const malformed = await refused(member, { token, password: NEW_PASSWORD, code: "12ab" });
    expect(malformed.json()).toMatchObject({ error: "invalid_code_format" });
    const both = await refused(member, { token, password: NEW_PASSWORD, code: totpCode(t, secret), recoveryCode: "abcde-12345-fghjk" });
    expect(both.json()).toMatchObject({ error: "invalid_request" });
    // A weak password is refused before the code is looked at: the code is not spent.
    const weak = await refused(member, { token, password: "short", code: totpCode(t, secret) });
    expect(weak.json()).toMatchObject({ error: "password_too_short" });
    expect(await canSignIn(member, NEW_PASSWORD)).toBeNull();

    const done = await confirm({ token, password: NEW_PASSWORD, code: totpCode(t, secret) });
    expect(done.statusCode).toBe(204);
    expect(done.headers["set-cookie"] ?? "").not.toContain("latchkey_session");
    expect((await signedIn.get("/api/v1/session")).statusCode).toBe(401);
    // Sign in as usual: the new password, then a (newer) code.
    const next = await passwordStep(t, { email: member.email, password: NEW_PASSWORD });
    t.clock.advanceSeconds(STEP_SECONDS);
    expect((await submitCode(next, totpCode(t, secret))).statusCode).toBe(200);
    const [event] = await events(member.userId, "password.reset");
    expect(JSON.parse(event!.detail)).toMatchObject({ secondFactor: "auth_app" });
    expect(t.mail.sent.find((m) => m.to === member.email && m.subject.includes("password was reset"))?.text).toContain(
      "and a code from your authenticator app",
    );
  });

  it("an auth-app user through the page: the code is asked on the same form; a wrong one keeps the form with the focus on it", async () => {
    const member = await seedMember(t);
    const { secret } = await enableAuthApp(t, member);
    t.clock.advanceSeconds(STEP_SECONDS);
    const token = await resetToken(member);
    const browser = new Browser(t.app);
    const page = await browser.get(`/login/reset/${token}`);
    const action = `/login/reset/${token}`;
    const wrong = await browser.request("POST", action, {
      form: { _csrf: csrfFrom(page.body), password: NEW_PASSWORD, code: wrongCode(t, secret) },
    });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.body).toMatch(/id="f-code"[^>]*autofocus[^>]*aria-invalid="true"/);
    expect(wrong.body).toContain("You can try 4 more times with this link.");
    const missing = await browser.request("POST", action, { form: { _csrf: csrfFrom(page.body), password: NEW_PASSWORD, code: "" } });
    expect(missing.statusCode).toBe(409);
    const done = await browser.request("POST", action, {
      form: { _csrf: csrfFrom(page.body), password: NEW_PASSWORD, code: totpCode(t, secret), recoveryCode: "" },
    });
    expect(done.statusCode).toBe(303);
    expect(await canSignIn(member, NEW_PASSWORD)).toBe("auth_app");
  });

  it("a recovery code instead of the app code is used up by the reset", async () => {
    const member = await seedMember(t);
    const { codes } = await enableAuthApp(t, member);
    const token = await resetToken(member);
    const done = await confirm({ token, password: NEW_PASSWORD, recoveryCode: codes[3]!.toUpperCase() });
    expect(done.statusCode).toBe(204);
    const used = await t.ctx.db
      .selectFrom("recovery_codes")
      .select("used_at")
      .where("user_id", "=", member.userId)
      .where("used_at", "is not", null)
      .execute();
    expect(used).toHaveLength(1);
    // The same code does not work again, neither at sign-in nor on another reset.
    const again = await resetToken(member);
    expect((await refused(member, { token: again, password: "yet another passphrase", recoveryCode: codes[3] })).json()).toMatchObject({
      error: "invalid_code",
    });
    const [event] = await events(member.userId, "password.reset");
    expect(JSON.parse(event!.detail)).toMatchObject({ secondFactor: "recovery_code", recoveryCodesRemaining: 9 });
    expect(t.mail.sent.find((m) => m.to === member.email && m.subject.includes("password was reset"))?.text).toContain(
      "and a recovery code (9 unused recovery codes left)",
    );
  });

  it("another person's code does not open someone's link", async () => {
    const member = await seedMember(t);
    const other = await seedMember(t);
    await enableAuthApp(t, member);
    const { secret: otherSecret } = await enableAuthApp(t, other);
    t.clock.advanceSeconds(STEP_SECONDS);
    const token = await resetToken(member);
    const response = await refused(member, { token, password: NEW_PASSWORD, code: totpCode(t, otherSecret) });
    expect(response.json()).toMatchObject({ error: "invalid_code" });
  });

  it("5 wrong codes end the link; the 6th try is refused without being checked", async () => {
    const member = await seedMember(t);
    const { secret } = await enableAuthApp(t, member);
    t.clock.advanceSeconds(STEP_SECONDS);
    const token = await resetToken(member);
    for (let i = 1; i <= 4; i++) {
      const response = await refused(member, { token, password: NEW_PASSWORD, code: wrongCode(t, secret) });
      expect(response.json()).toMatchObject({ error: "invalid_code", details: { attemptsLeft: 5 - i } });
    }
    const fifth = await refused(member, { token, password: NEW_PASSWORD, code: wrongCode(t, secret) });
    expect(fifth.statusCode).toBe(400);
    expect(fifth.json()).toMatchObject({ error: "link_invalid" });
    expect(fifth.json().message).toContain("Too many wrong codes for this link");
    const sixth = await refused(member, { token, password: NEW_PASSWORD, code: totpCode(t, secret) });
    expect(sixth.json()).toMatchObject({ error: "link_invalid" });
    expect(await canSignIn(member, NEW_PASSWORD)).toBeNull();
  });

  it("wrong codes on the reset form count against the user's code limit shared with sign-in: the 10th locks code entry", async () => {
    const member = await seedMember(t);
    const { secret } = await enableAuthApp(t, member);
    t.clock.advanceSeconds(STEP_SECONDS);
    // 9 wrong codes at sign-in (two sign-ins, 5 + 4)…
    for (const tries of [5, 4]) {
      const b = await passwordStep(t, member);
      for (let i = 0; i < tries; i++) expect((await submitCode(b, wrongCode(t, secret))).statusCode).not.toBe(200);
    }
    const token = await resetToken(member);
    // …and the 10th on the reset form locks code entry everywhere, ends the link and tells the person.
    const locked = await confirm({ token, password: NEW_PASSWORD, code: wrongCode(t, secret) });
    expect(locked.statusCode).toBe(429);
    expect(locked.json()).toMatchObject({ error: "too_many_attempts" });
    expect(locked.headers["retry-after"]).toBeDefined();
    expect(t.mail.last(member.email)?.subject).toContain("Too many wrong codes");
    const signIn = await passwordStep(t, member);
    expect((await submitCode(signIn, totpCode(t, secret))).json()).toMatchObject({ error: "too_many_attempts" });
    // A new link does not get around the lock: the right code is refused while it lasts.
    const fresh = await resetToken(member);
    const stillLocked = await refused(member, { token: fresh, password: NEW_PASSWORD, code: totpCode(t, secret) });
    expect(stillLocked.statusCode).toBe(429);
    expect((await confirm({ token, password: NEW_PASSWORD, code: totpCode(t, secret) })).json()).toMatchObject({ error: "link_invalid" });
  });

  // ---- who gets what ----

  it("an SSO member is told to sign in with SSO, and gets no link", async () => {
    const member = await seedMember(t, { accountName: "Initech SSO" });
    await t.ctx.db.updateTable("users").set({ password_hash: null }).where("id", "=", member.userId).execute();
    await t.ctx.db.updateTable("memberships").set({ sign_in_method: "sso" }).where("user_id", "=", member.userId).execute();
    const before = await rowCounts(t, ["password_resets"]);
    expect((await askForLink(member.email)).statusCode).toBe(202);
    const mail = t.mail.last(member.email)!;
    expect(mail.subject).toBe("How to sign in to Latchkey");
    expect(mail.text).toContain('you sign in to "Initech SSO" with single sign-on');
    expect(mail.text).toContain(`${t.config.publicUrl.origin}/login/sso`);
    expect(mail.text).not.toContain("/login/reset/");
    expect(await rowCounts(t, ["password_resets"])).toEqual({ ...before, mail: before["mail"]! + 1 });
  });

  it("an unknown address gets the same answer and no email; nothing is stored", async () => {
    const before = await rowCounts(t, ["password_resets", "users"]);
    const response = await askForLink("nobody-here@example.com");
    expect(response.statusCode).toBe(202);
    expect(response.body).toBe("");
    expect(await rowCounts(t, ["password_resets", "users"])).toEqual(before);
  });

  it("asking again voids the older link; the newest one works", async () => {
    const member = await seedMember(t);
    const first = await resetToken(member);
    const second = await resetToken(member);
    expect((await refused(member, { token: first, password: NEW_PASSWORD })).json()).toMatchObject({ error: "link_invalid" });
    expect((await confirm({ token: second, password: NEW_PASSWORD })).statusCode).toBe(204);
  });

  // ---- bad input ----

  it("bad input is a 4xx with a clear message, and changes nothing", async () => {
    const member = await seedMember(t);
    const token = await resetToken(member);
    const cases: Array<[string, unknown, number, string]> = [
      ["/api/v1/password-reset", {}, 400, "invalid_request"],
      ["/api/v1/password-reset", { email: 42 }, 400, "invalid_request"],
      ["/api/v1/password-reset", { email: member.email, extra: 1 }, 400, "invalid_request"],
      ["/api/v1/password-reset", { email: "x".repeat(5000) }, 400, "invalid_request"],
      ["/api/v1/password-reset", { email: "not an address" }, 422, "email_invalid"],
      ["/api/v1/password-reset", { email: "a\u0000b@example.com" }, 422, "email_invalid"],
      ["/api/v1/password-reset", [member.email], 400, "invalid_request"],
      ["/api/v1/password-reset/confirm", {}, 400, "invalid_request"],
      ["/api/v1/password-reset/confirm", { token }, 400, "invalid_request"],
      ["/api/v1/password-reset/confirm", { password: NEW_PASSWORD }, 400, "invalid_request"],
      ["/api/v1/password-reset/confirm", { token: 7, password: NEW_PASSWORD }, 400, "invalid_request"],
      ["/api/v1/password-reset/confirm", { token, password: ["a", "b"] }, 400, "invalid_request"],
      ["/api/v1/password-reset/confirm", { token, password: NEW_PASSWORD, code: 123456 }, 400, "invalid_request"],
      ["/api/v1/password-reset/confirm", { token, password: "x".repeat(5000) }, 400, "invalid_request"],
      ["/api/v1/password-reset/confirm", { token, password: "x".repeat(129) }, 422, "password_too_long"],
      ["/api/v1/password-reset/confirm", { token: "x".repeat(300), password: NEW_PASSWORD }, 400, "invalid_request"],
      ["/api/v1/password-reset/confirm", { token: "é".repeat(43), password: NEW_PASSWORD }, 400, "link_invalid"],
    ];
    for (const [url, body, status, code] of cases) {
      const before = await rowCounts(t, TABLES);
      const response = await new Browser(t.app).request("POST", url, { json: body });
      await t.app.afterResponse.settled();
      expect(response.statusCode, `${url} ${JSON.stringify(body).slice(0, 80)}`).toBe(status);
      expect(response.json(), url).toMatchObject({ error: code, message: expect.any(String) });
      const after = await rowCounts(t, TABLES);
      // A refused request may count against the address's throttle (attempt_counters), nothing else.
      expect({ ...after, attempt_counters: 0 }).toEqual({ ...before, attempt_counters: 0 });
    }
    const tooBig = await t.app.inject({
      method: "POST",
      url: "/api/v1/password-reset/confirm",
      headers: { "content-type": "application/json" },
      payload: JSON.stringify({ token, password: "x".repeat(70_000) }),
    });
    expect(tooBig.statusCode).toBe(413);
    const notJson = await t.app.inject({
      method: "POST",
      url: "/api/v1/password-reset",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      payload: `email=${encodeURIComponent(member.email)}`,
    });
    expect(notJson.statusCode).toBe(415);
    const broken = await t.app.inject({
      method: "POST",
      url: "/api/v1/password-reset/confirm",
      headers: { "content-type": "application/json" },
      payload: "{token:",
    });
    expect(broken.statusCode).toBe(400);
    expect(broken.json()).toMatchObject({ error: "invalid_json" });
    // The link still works after all of that.
    expect((await confirm({ token, password: NEW_PASSWORD })).statusCode).toBe(204);
  });

  it("the pages refuse bad forms with 4xx and change nothing", async () => {
    const member = await seedMember(t);
    const token = await resetToken(member);
    const browser = new Browser(t.app);
    const page = await browser.get(`/login/reset/${token}`);
    const csrf = csrfFrom(page.body);
    const before = await rowCounts(t, TABLES);
    const hash = await passwordHash(member.userId);
    const noCsrf = await browser.request("POST", `/login/reset/${token}`, { form: { password: NEW_PASSWORD } });
    expect(noCsrf.statusCode).toBe(403);
    const missing = await browser.request("POST", `/login/reset/${token}`, { form: { _csrf: csrf } });
    expect(missing.statusCode).toBe(400);
    expect(missing.body).toContain("&quot;password&quot; is required");
    const foreign = await browser.request("POST", `/login/reset/${token}`, {
      form: { _csrf: csrf, password: NEW_PASSWORD },
      headers: { origin: "https://evil.example" },
    });
    expect(foreign.statusCode).toBe(403);
    const forgot = await browser.get("/login/forgot");
    const badEmail = await browser.request("POST", "/login/forgot", { form: { _csrf: csrfFrom(forgot.body), email: "nope" } });
    expect(badEmail.statusCode).toBe(422);
    expect(badEmail.body).toMatch(/id="f-email"[^>]*autofocus[^>]*aria-invalid="true"/);
    await t.app.afterResponse.settled();
    expect({ ...(await rowCounts(t, TABLES)), attempt_counters: 0 }).toEqual({ ...before, attempt_counters: 0 });
    expect(await passwordHash(member.userId)).toBe(hash);
  });
});

describeEachDialect("forgot password with a configured link lifetime", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect, { env: { LATCHKEY_PASSWORD_RESET_TTL_SECONDS: "600" } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it("LATCHKEY_PASSWORD_RESET_TTL_SECONDS=600: the email says 10 minutes, and the link works for exactly that long", async () => {
    const member = await seedMember(t);
    expect((await new Browser(t.app).request("POST", "/api/v1/password-reset", { json: { email: member.email } })).statusCode).toBe(202);
    await t.app.afterResponse.settled();
    expect(t.mail.last(member.email)!.text).toContain("expires in 10 minutes");
    const link = t.mail.lastLink(member.email);
    t.clock.advanceSeconds(599);
    expect((await new Browser(t.app).get(link)).statusCode).toBe(200);
    t.clock.advanceSeconds(1);
    const expired = await new Browser(t.app).get(link);
    expect(expired.statusCode).toBe(410);
    expect(expired.body).toContain("links work for 10 minutes");
  });
});
