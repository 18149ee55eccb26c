import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDialect } from "./helpers/dialects.js";
import { csrfFrom, seedMember, startTestApp, Browser, type TestApp } from "./helpers/app.js";
import { codesOnPage, enableAuthApp, passwordStep, STEP_SECONDS, submitCode, submitRecoveryCode, totpCode } from "./helpers/auth-app.js";

describeEachDialect("auth app codes", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  async function sessionCount(userId: string): Promise<number> {
    return (await t.ctx.db.selectFrom("sessions").select("id").where("user_id", "=", userId).execute()).length;
  }

  async function auditTypes(userId: string): Promise<string[]> {
    const rows = await t.ctx.db.selectFrom("audit_events").select("type").where("user_id", "=", userId).orderBy("created_at").execute();
    return rows.map((r) => r.type);
  }

  async function auditDetail(userId: string, type: string): Promise<Array<Record<string, unknown>>> {
    const rows = await t.ctx.db
      .selectFrom("audit_events")
      .select("detail")
      .where("user_id", "=", userId)
      .where("type", "=", type)
      .orderBy("created_at")
      .execute();
    return rows.map((r) => JSON.parse(r.detail) as Record<string, unknown>);
  }

  function mailsTo(email: string, subject: string): string[] {
    return t.mail.sent.filter((m) => m.to === email && m.subject.includes(subject)).map((m) => m.text);
  }

  /** Regenerates recovery codes from the manage page of `browser` and returns the new ones as shown. */
  async function regenerate(browser: Browser): Promise<string[]> {
    const manage = await browser.get("/settings/two-factor");
    const response = await browser.request("POST", "/settings/two-factor/recovery-codes", { form: { _csrf: csrfFrom(manage.body) } });
    expect(response.statusCode).toBe(303);
    expect(response.headers.location).toBe("/settings/two-factor/recovery-codes");
    const page = await browser.get("/settings/two-factor/recovery-codes");
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain("Your old codes no longer work");
    return codesOnPage(page.body);
  }

  it("accepts a code once: the same code again is refused in the same browser and from another browser", async () => {
    const member = await seedMember(t);
    const { secret } = await enableAuthApp(t, member);
    t.clock.advanceSeconds(STEP_SECONDS);
    const code = totpCode(t, secret);

    const browser = await passwordStep(t, member);
    const first = await submitCode(browser, code);
    expect(first.statusCode).toBe(200);
    expect(first.json()).toEqual({ ok: true });
    expect((await browser.get("/api/v1/session")).json().twoFactor.method).toBe("auth_app");
    const sessions = await sessionCount(member.userId);

    // Same browser, a new sign-in (new challenge), the same code.
    expect((await browser.request("POST", "/api/v1/login", { json: { email: member.email, password: member.password } })).statusCode).toBe(
      200,
    );
    const again = await submitCode(browser, code);
    expect(again.statusCode).toBe(401);
    expect(again.json().error).toBe("code_reused");
    expect(again.json().message).toMatch(/already used/);

    // Another browser (another session, as if on another instance): refused too.
    const other = await passwordStep(t, member);
    const replay = await submitCode(other, code);
    expect(replay.statusCode).toBe(401);
    expect(replay.json().error).toBe("code_reused");
    expect(other.cookies.has("latchkey_session")).toBe(false);
    expect(await sessionCount(member.userId)).toBe(sessions);

    // The refused replay is a wrong try, not the end of the sign-in: the next code works in the same challenge.
    t.clock.advanceSeconds(STEP_SECONDS);
    expect((await submitCode(other, totpCode(t, secret))).statusCode).toBe(200);
  });

  it("refuses the replay through the web form too", async () => {
    const member = await seedMember(t);
    const { secret } = await enableAuthApp(t, member);
    t.clock.advanceSeconds(STEP_SECONDS);
    const code = totpCode(t, secret);
    for (const [i, expected] of [
      [0, 303],
      [1, 401],
    ] as const) {
      const browser = new Browser(t.app);
      const step = await browser.signInWithPassword(member.email, member.password);
      expect(step.headers.location).toBe("/login/code");
      const page = await browser.get("/login/code");
      const response = await browser.request("POST", "/login/code", { form: { _csrf: csrfFrom(page.body), code } });
      expect(response.statusCode, `attempt ${i}`).toBe(expected);
      if (expected === 401) expect(response.body).toContain("already used");
    }
  });

  it("refuses the code the setup was confirmed with", async () => {
    const member = await seedMember(t);
    const { secret } = await enableAuthApp(t, member);
    const browser = await passwordStep(t, member);
    const response = await submitCode(browser, totpCode(t, secret));
    expect(response.statusCode).toBe(401);
    expect(response.json().error).toBe("code_reused");
  });

  it("refuses an older code after a newer one was accepted", async () => {
    const member = await seedMember(t);
    const { secret } = await enableAuthApp(t, member);
    t.clock.advanceSeconds(4 * STEP_SECONDS);
    // The next step's code (+1, allowed drift) first…
    expect((await submitCode(await passwordStep(t, member), totpCode(t, secret, 1))).statusCode).toBe(200);
    // …then the current and the previous one, both still inside the window, are older: refused.
    for (const offset of [0, -1]) {
      const response = await submitCode(await passwordStep(t, member), totpCode(t, secret, offset));
      expect(response.statusCode, `offset ${offset}`).toBe(401);
      expect(response.json().error).toBe("code_reused");
    }
    // Once time reaches a newer step, its code works.
    t.clock.advanceSeconds(2 * STEP_SECONDS);
    expect((await submitCode(await passwordStep(t, member), totpCode(t, secret))).statusCode).toBe(200);
  });

  it("accepts one step of drift either way and refuses two", async () => {
    const member = await seedMember(t);
    const { secret } = await enableAuthApp(t, member);
    t.clock.advanceSeconds(5 * STEP_SECONDS);
    const browser = await passwordStep(t, member);
    for (const offset of [-2, 2]) {
      const response = await submitCode(browser, totpCode(t, secret, offset));
      expect(response.statusCode, `offset ${offset}`).toBe(401);
      expect(response.json().error).toBe("invalid_code");
    }
    const back = await submitCode(browser, totpCode(t, secret, -1));
    expect(back.statusCode).toBe(200);
    const ahead = await submitCode(await passwordStep(t, member), totpCode(t, secret, 1));
    expect(ahead.statusCode).toBe(200);
    const user = await t.ctx.db.selectFrom("users").select("totp_last_step").where("id", "=", member.userId).executeTakeFirstOrThrow();
    expect(Number(user.totp_last_step)).toBe(Math.floor(t.clock.now() / 1000 / STEP_SECONDS) + 1);
  });

  it("accepts a recovery code once, whatever its case and dashes", async () => {
    const member = await seedMember(t);
    const { codes } = await enableAuthApp(t, member);
    const code = codes[3] as string;

    const browser = await passwordStep(t, member);
    const used = await submitRecoveryCode(browser, ` ${code.replace(/-/g, "").toUpperCase()} `);
    expect(used.statusCode).toBe(200);
    expect(used.json()).toEqual({ ok: true, recoveryCodesRemaining: 9 });
    expect((await browser.get("/api/v1/session")).statusCode).toBe(200);

    for (const variant of [code, code.toUpperCase(), code.replace(/-/g, " ")]) {
      const again = await submitRecoveryCode(await passwordStep(t, member), variant);
      expect(again.statusCode, variant).toBe(401);
      expect(again.json().error).toBe("invalid_code");
      expect(again.json().message).toMatch(/not right, or it was already used/);
    }
    // Another one still works.
    expect((await submitRecoveryCode(await passwordStep(t, member), codes[4])).statusCode).toBe(200);
  });

  it("accepts a recovery code through the web form", async () => {
    const member = await seedMember(t);
    const { codes } = await enableAuthApp(t, member);
    const browser = new Browser(t.app);
    await browser.signInWithPassword(member.email, member.password);
    const codePage = await browser.get("/login/code");
    expect(codePage.body).toContain("Use a recovery code");
    const page = await browser.get("/login/recovery");
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain("Recovery code");
    const response = await browser.request("POST", "/login/recovery", { form: { _csrf: csrfFrom(page.body), code: codes[0] as string } });
    expect(response.statusCode).toBe(303);
    expect(response.headers.location).toBe("/");
    expect((await browser.get("/api/v1/session")).statusCode).toBe(200);
  });

  it("regenerating voids every old recovery code at once; the new ones work", async () => {
    const member = await seedMember(t);
    const { browser, codes: old } = await enableAuthApp(t, member);
    // One old code used before regenerating.
    expect((await submitRecoveryCode(await passwordStep(t, member), old[0])).statusCode).toBe(200);

    const fresh = await regenerate(browser);
    expect(fresh).toHaveLength(10);
    expect(new Set(fresh).size).toBe(10);
    for (const code of fresh) expect(old).not.toContain(code);
    expect((await browser.get("/api/v1/two-factor")).json().recoveryCodesRemaining).toBe(10);
    const rows = await t.ctx.db.selectFrom("recovery_codes").select("id").where("user_id", "=", member.userId).execute();
    expect(rows).toHaveLength(10);

    // Every old code is refused. Four wrong tries per sign-in, then a new code (which ends the run of failures).
    const unused = old.slice(1);
    let next = 0;
    for (let i = 0; i < unused.length; i += 4) {
      const attempt = await passwordStep(t, member);
      for (const code of unused.slice(i, i + 4)) {
        const response = await submitRecoveryCode(attempt, code);
        expect(response.statusCode, code).toBe(401);
        expect(response.json().error).toBe("invalid_code");
      }
      const ok = await submitRecoveryCode(attempt, fresh[next++]);
      expect(ok.statusCode).toBe(200);
      expect(ok.json().recoveryCodesRemaining).toBe(10 - next);
    }
    expect(next).toBe(3);
    // The code used before regenerating is no more use than the others.
    expect((await submitRecoveryCode(await passwordStep(t, member), old[0])).statusCode).toBe(401);

    // Done: the codes are never shown again.
    const shown = await browser.get("/settings/two-factor/recovery-codes");
    await browser.request("POST", "/settings/two-factor/recovery-codes/done", { form: { _csrf: csrfFrom(shown.body) } });
    const later = await browser.get("/settings/two-factor/recovery-codes");
    expect(later.statusCode).toBe(303);
    expect((await browser.get("/settings/two-factor/recovery-codes.txt")).statusCode).toBe(410);
    const manage = await browser.get("/settings/two-factor");
    for (const code of fresh) expect(manage.body).not.toContain(code);
  });

  it("shows how many recovery codes remain, and warns on the home page at three or fewer", async () => {
    const member = await seedMember(t);
    const { browser, codes } = await enableAuthApp(t, member);
    expect((await browser.get("/api/v1/two-factor")).json()).toMatchObject({ method: "auth_app", recoveryCodesRemaining: 10 });
    expect((await browser.get("/")).body).not.toContain("recovery codes left");

    let signedIn = browser;
    for (let used = 1; used <= 8; used++) {
      signedIn = await passwordStep(t, member);
      const response = await submitRecoveryCode(signedIn, codes[used - 1]);
      expect(response.statusCode).toBe(200);
      const remaining = 10 - used;
      expect(response.json().recoveryCodesRemaining).toBe(remaining);
      expect((await signedIn.get("/api/v1/two-factor")).json().recoveryCodesRemaining).toBe(remaining);
      const home = await signedIn.get("/");
      expect(home.statusCode).toBe(200);
      if (remaining > 3) expect(home.body).not.toContain("recovery code");
      else expect(home.body).toContain(`You have only ${remaining} recovery code${remaining === 1 ? "" : "s"} left`);
    }
    const profile = await signedIn.get("/settings/profile");
    expect(profile.statusCode).toBe(200);
    expect(profile.body).toContain("2 recovery codes left");
    expect((await signedIn.get("/settings/two-factor")).body).toContain("<strong>2</strong> of your recovery codes are unused");
    // The page that manages the app never shows a code, only the count.
    const manage = await signedIn.get("/settings/two-factor");
    for (const code of codes) expect(manage.body).not.toContain(code);
  });

  it("emails the person and records an audit event on enable, recovery-code use, regeneration and disable", async () => {
    const member = await seedMember(t);
    const { browser, codes } = await enableAuthApp(t, member);
    expect(mailsTo(member.email, "Authenticator app turned on")).toHaveLength(1);
    expect(await auditTypes(member.userId)).toContain("two_factor.auth_app_enabled");

    expect((await submitRecoveryCode(await passwordStep(t, member), codes[0])).statusCode).toBe(200);
    // A second later, so the two audit events have an order (ties in created_at come back in any order on PostgreSQL).
    t.clock.advanceSeconds(1);
    expect((await submitRecoveryCode(await passwordStep(t, member), codes[1])).statusCode).toBe(200);
    const used = mailsTo(member.email, "A recovery code was used to sign in");
    expect(used).toHaveLength(2);
    expect(used[0]).toContain("You have 9 unused recovery codes left");
    expect(used[1]).toContain("You have 8 unused recovery codes left");
    expect(await auditDetail(member.userId, "sign_in.recovery_code_used")).toEqual([{ remaining: 9 }, { remaining: 8 }]);

    await regenerate(browser);
    expect(mailsTo(member.email, "New recovery codes issued")).toHaveLength(1);
    expect(await auditTypes(member.userId)).toContain("two_factor.recovery_codes_regenerated");

    t.clock.advanceSeconds(1);
    const manage = await browser.get("/settings/two-factor");
    const disabled = await browser.request("POST", "/settings/two-factor/disable", { form: { _csrf: csrfFrom(manage.body) } });
    expect(disabled.statusCode).toBe(303);
    expect(mailsTo(member.email, "Authenticator app turned off")).toHaveLength(1);

    const types = await auditTypes(member.userId);
    for (const type of [
      "two_factor.auth_app_enabled",
      "sign_in.recovery_code_used",
      "two_factor.recovery_codes_regenerated",
      "two_factor.auth_app_disabled",
    ])
      expect(types).toContain(type);
    expect(types.indexOf("two_factor.auth_app_enabled")).toBeLessThan(types.indexOf("two_factor.recovery_codes_regenerated"));
    expect(types.indexOf("two_factor.recovery_codes_regenerated")).toBeLessThan(types.indexOf("two_factor.auth_app_disabled"));
    // Notices never carry a code.
    for (const message of t.mail.sent.filter((m) => m.to === member.email))
      for (const code of codes) expect(message.text).not.toContain(code);
  });
});
