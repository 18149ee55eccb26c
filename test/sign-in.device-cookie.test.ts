import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { LightMyRequestResponse } from "fastify";
import { describeEachDialect } from "./helpers/dialects.js";
import { Browser, csrfFrom, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { enableAuthApp, passwordStep, STEP_SECONDS, submitCode, submitRecoveryCode, totpCode } from "./helpers/auth-app.js";
import { createAccountWithAdmin } from "../src/team/accounts.js";
import { defaultLimits } from "../src/config.js";
import { newId } from "../src/auth/tokens.js";

/**
 * Finding F7 of the security review: 11 wrong passwords locked the owner of a known email out for 15 minutes. A
 * browser that completed a sign-in before carries a signed device cookie (OWASP "device cookies"); with it the
 * owner's right password is not refused by the per-email lock, while the attacker, and every browser without the
 * cookie, stays locked. Both dialects, each with the database and with the Redis attempt store.
 */
const DEVICE = "latchkey_device";
const EMAIL_LIMIT = defaultLimits.passwordFailuresPerEmail;
const DEVICE_LIMIT = defaultLimits.passwordFailuresPerDevice;
const WINDOW = defaultLimits.passwordAttemptWindowSeconds;
const INVALID = { error: "invalid_credentials", message: "The email or password is not correct." };

function setCookieLine(response: LightMyRequestResponse, name: string): string | undefined {
  const header = response.headers["set-cookie"];
  const lines = header === undefined ? [] : Array.isArray(header) ? header : [header];
  return lines.find((line) => line.startsWith(`${name}=`));
}

function attributes(line: string): string[] {
  return line
    .split(";")
    .slice(1)
    .map((a) => a.trim().toLowerCase());
}

function apiLogin(browser: Browser, email: string, password: string): Promise<LightMyRequestResponse> {
  return browser.request("POST", "/api/v1/login", { json: { email, password } });
}

const attemptStores = [
  { label: "database attempt store", options: { redis: false } },
  { label: "Redis attempt store", options: { redis: true } },
];

describeEachDialect("device cookies against the per-email lock", attemptStores, (dialect, { redis }) => {
  // A fresh app per test: every counter (per email, per device, per IP: all requests come from 127.0.0.1) starts
  // at zero, in Redis too, whose windows the test clock cannot move.
  let t: TestApp;
  beforeEach(async () => {
    t = await startTestApp(dialect, { redis });
  });
  afterEach(async () => {
    await t?.close();
  });

  /** A browser in which the member completed a sign-in (password + emailed link) and then signed out. */
  async function trustedBrowser(member: { email: string; password: string }): Promise<Browser> {
    const browser = await signedInBrowser(t, member);
    expect(browser.cookies.get(DEVICE)).toBeDefined();
    expect((await browser.request("POST", "/api/v1/logout")).statusCode).toBe(204);
    expect(browser.cookies.has("latchkey_session")).toBe(false);
    return browser;
  }

  /** An attacker's browser that spends the email's budget: `EMAIL_LIMIT` wrong passwords, then one refused. */
  async function lockOut(email: string): Promise<Browser> {
    const attacker = new Browser(t.app);
    for (let i = 0; i < EMAIL_LIMIT; i++) {
      const wrong = await apiLogin(attacker, email, `guess ${i}`);
      expect(wrong.statusCode).toBe(401);
      expect(wrong.json()).toEqual(INVALID);
    }
    const refused = await apiLogin(attacker, email, "one guess too many");
    expect(refused.statusCode).toBe(429);
    expect(refused.json().error).toBe("too_many_attempts");
    return attacker;
  }

  /** A browser carrying only `cookie` as its device cookie. */
  function browserWithDeviceCookie(cookie: string): Browser {
    const browser = new Browser(t.app);
    browser.cookies.set(DEVICE, cookie);
    return browser;
  }

  describe("issuing", () => {
    it("sets the device cookie only after the emailed link completes the sign-in: HttpOnly, SameSite=Lax, Path=/, 180 days; sign-out keeps it", async () => {
      const member = await seedMember(t);
      const browser = new Browser(t.app);
      const step = await browser.signInWithPassword(member.email, member.password);
      expect(step.statusCode).toBe(303);
      // The password alone proves too little to make a browser trusted.
      expect(setCookieLine(step, DEVICE)).toBeUndefined();
      const linked = await browser.get(t.mail.lastLink(member.email));
      expect(linked.statusCode).toBe(303);
      const line = setCookieLine(linked, DEVICE);
      expect(line).toBeDefined();
      const attrs = attributes(line as string);
      expect(attrs).toContain("httponly");
      expect(attrs).toContain("samesite=lax");
      expect(attrs).toContain("path=/");
      expect(attrs).toContain(`max-age=${180 * 24 * 60 * 60}`);
      expect(attrs).not.toContain("secure");
      expect(attrs.some((a) => a.startsWith("domain="))).toBe(false);
      const logout = await browser.request("POST", "/api/v1/logout");
      expect(logout.statusCode).toBe(204);
      expect(setCookieLine(logout, DEVICE)).toBeUndefined();
      expect(browser.cookies.has(DEVICE)).toBe(true);
    });

    it("sets it after an auth-app code (web form and API) and after a recovery code, never after the password step", async () => {
      const member = await seedMember(t);
      const app = await enableAuthApp(t, member);
      t.clock.advanceSeconds(STEP_SECONDS);

      const api = await passwordStep(t, member);
      expect(api.cookies.has(DEVICE)).toBe(false);
      const byCode = await submitCode(api, totpCode(t, app.secret));
      expect(byCode.statusCode).toBe(200);
      expect(setCookieLine(byCode, DEVICE)).toBeDefined();

      t.clock.advanceSeconds(STEP_SECONDS);
      const web = new Browser(t.app);
      const step = await web.signInWithPassword(member.email, member.password);
      expect(step.headers.location).toBe("/login/code");
      expect(web.cookies.has(DEVICE)).toBe(false);
      const form = await web.submit("/login/code", "/login/code", { code: totpCode(t, app.secret) });
      expect(form.statusCode).toBe(303);
      expect(setCookieLine(form, DEVICE)).toBeDefined();

      const recovery = await passwordStep(t, member);
      const byRecovery = await submitRecoveryCode(recovery, app.codes[0]);
      expect(byRecovery.statusCode).toBe(200);
      expect(setCookieLine(byRecovery, DEVICE)).toBeDefined();
    });

    it("names it __Host-latchkey_device with Secure under an https public URL", async () => {
      const secure = await startTestApp(dialect, { redis, env: { LATCHKEY_PUBLIC_URL: "https://auth.example.com" } });
      try {
        const member = await seedMember(secure);
        const browser = new Browser(secure.app);
        expect((await browser.signInWithPassword(member.email, member.password)).statusCode).toBe(303);
        const linked = await browser.get(secure.mail.lastLink(member.email));
        expect(setCookieLine(linked, DEVICE)).toBeUndefined();
        const line = setCookieLine(linked, `__Host-${DEVICE}`);
        expect(line).toBeDefined();
        expect(attributes(line as string)).toContain("secure");
      } finally {
        await secure.close();
      }
    });
  });

  describe("during a lock of the owner's email", () => {
    it("keeps the attacker locked, lets the owner's trusted browser in (API, web form, email link), and keeps a new browser of the owner locked", async () => {
      const member = await seedMember(t);
      const owner = await trustedBrowser(member);
      const attacker = await lockOut(member.email);
      // Past the limit the attacker stays refused, even with the right password.
      expect((await apiLogin(attacker, member.email, member.password)).statusCode).toBe(429);

      const api = await apiLogin(owner, member.email, member.password);
      expect(api.statusCode).toBe(200);
      expect(api.json()).toEqual({ next: "email_link" });
      const web = await owner.signInWithPassword(member.email, member.password);
      expect(web.statusCode).toBe(303);
      expect(web.headers.location).toBe("/login/email");
      const linked = await owner.get(t.mail.lastLink(member.email));
      expect(linked.statusCode).toBe(303);
      expect((await owner.get("/api/v1/session")).json().user.email).toBe(member.email);

      // The owner's success does not lift the email's lock: the attacker gets no fresh budget from it.
      const stillLocked = await apiLogin(attacker, member.email, member.password);
      expect(stillLocked.statusCode).toBe(429);
      expect(stillLocked.json().error).toBe("too_many_attempts");
      expect(Number(stillLocked.headers["retry-after"])).toBeGreaterThan(0);

      // Documented: a browser that never completed a sign-in is untrusted and waits like the attacker.
      const newBrowser = new Browser(t.app);
      const refused = await apiLogin(newBrowser, member.email, member.password);
      expect(refused.statusCode).toBe(429);
      expect(refused.json().error).toBe("too_many_attempts");
      expect((await newBrowser.signInWithPassword(member.email, member.password)).statusCode).toBe(429);
    });

    it("gives no exemption to a tampered device cookie, another user's, one with the user swapped, or one from before a password change", async () => {
      const member = await seedMember(t);
      const other = await seedMember(t);
      const owner = await trustedBrowser(member);
      const otherBrowser = await trustedBrowser(other);
      const mine = owner.cookies.get(DEVICE) as string;
      const theirs = otherBrowser.cookies.get(DEVICE) as string;
      expect(theirs).toContain(other.userId);
      // Signed in before the lock, to change the password later.
      const changer = await signedInBrowser(t, member);
      const changerBefore = changer.cookies.get(DEVICE) as string;
      await lockOut(member.email);

      const last = mine.slice(-1);
      const tampered = mine.slice(0, -1) + (last === "A" ? "B" : "A");
      const candidates = {
        tampered,
        truncated: mine.slice(0, -5),
        garbage: "not-a-device-cookie",
        "another user's": theirs,
        "another user's, with this user's id": theirs.replace(other.userId, member.userId),
      };
      for (const [what, cookie] of Object.entries(candidates)) {
        const response = await apiLogin(browserWithDeviceCookie(cookie), member.email, member.password);
        expect(response.statusCode, what).toBe(429);
        expect(response.json().error, what).toBe("too_many_attempts");
      }
      // The genuine cookie, copied as is, does work (what the cookie binds is the user, not the jar).
      expect((await apiLogin(browserWithDeviceCookie(mine), member.email, member.password)).statusCode).toBe(200);

      // A password change revokes every device cookie of the user, except that the browser that changed it gets a new one.
      const page = await changer.get("/settings/password");
      const newPassword = "a brand new long passphrase";
      const changed = await changer.request("POST", "/settings/password", {
        form: { _csrf: csrfFrom(page.body), currentPassword: member.password, newPassword },
      });
      expect(changed.statusCode).toBe(303);
      expect(setCookieLine(changed, DEVICE)).toBeDefined();
      expect(changer.cookies.get(DEVICE)).not.toBe(changerBefore);
      const stale = await apiLogin(browserWithDeviceCookie(mine), member.email, newPassword);
      expect(stale.statusCode).toBe(429);
      const renewed = await apiLogin(browserWithDeviceCookie(changer.cookies.get(DEVICE) as string), member.email, newPassword);
      expect(renewed.statusCode).toBe(200);
    });

    it(`limits wrong passwords from a trusted device by its own counter: ${DEVICE_LIMIT} answered 401, then 429 even for the right password`, async () => {
      const member = await seedMember(t);
      const owner = await trustedBrowser(member);
      await lockOut(member.email);
      for (let i = 0; i < DEVICE_LIMIT; i++) {
        const wrong = await apiLogin(owner, member.email, `owner typo ${i}`);
        expect(wrong.statusCode).toBe(401);
        expect(wrong.json()).toEqual(INVALID);
      }
      const atLimit = await apiLogin(owner, member.email, member.password);
      expect(atLimit.statusCode).toBe(429);
      expect(atLimit.json().error).toBe("too_many_attempts");
      const retryAfter = Number(atLimit.headers["retry-after"]);
      expect(retryAfter).toBeGreaterThan(0);
      expect(retryAfter).toBeLessThanOrEqual(WINDOW);
      expect((await apiLogin(owner, member.email, member.password)).statusCode).toBe(429);
      // A stolen copy of the cookie shares that counter: it gives no fresh budget either.
      const copy = browserWithDeviceCookie(owner.cookies.get(DEVICE) as string);
      expect((await apiLogin(copy, member.email, member.password)).statusCode).toBe(429);
    });

    it(`accepts the right password from a trusted device after ${DEVICE_LIMIT - 1} wrong ones, which resets the device's counter`, async () => {
      const member = await seedMember(t);
      const owner = await trustedBrowser(member);
      await lockOut(member.email);
      for (let i = 0; i < DEVICE_LIMIT - 1; i++) expect((await apiLogin(owner, member.email, `owner typo ${i}`)).statusCode).toBe(401);
      expect((await apiLogin(owner, member.email, member.password)).statusCode).toBe(200);
      for (let i = 0; i < DEVICE_LIMIT - 1; i++)
        expect((await apiLogin(owner, member.email, `owner typo again ${i}`)).statusCode).toBe(401);
      expect((await apiLogin(owner, member.email, member.password)).statusCode).toBe(200);
    });

    it("still applies the per-IP throttle to a trusted device", async () => {
      const member = await seedMember(t);
      const owner = await trustedBrowser(member);
      const ip = "203.0.113.9";
      const limit = defaultLimits.passwordAttemptsPerIp;
      const cookie = owner.cookieHeader();
      const fromIp = (email: string, password: string): Promise<LightMyRequestResponse> =>
        t.app.inject({ method: "POST", url: "/api/v1/login", remoteAddress: ip, headers: { cookie }, payload: { email, password } });
      for (let i = 0; i < limit - 1; i += 11) {
        const batch = Array.from({ length: Math.min(11, limit - 1 - i) }, (_, j) => fromIp(`spray-${i + j}@example.com`, "password guess"));
        expect((await Promise.all(batch)).map((r) => r.statusCode)).toEqual(batch.map(() => 401));
      }
      expect((await fromIp(member.email, member.password)).statusCode).toBe(200);
      const refused = await fromIp(member.email, member.password);
      expect(refused.statusCode).toBe(429);
      expect(refused.json().error).toBe("too_many_attempts");
    }, 180_000);
  });

  describe.skipIf(redis)("windows (test clock)", () => {
    it("ends the trusted device's pause after the window, while a device's failures never add to the email's counter", async () => {
      const member = await seedMember(t);
      const owner = await trustedBrowser(member);
      for (let i = 0; i < DEVICE_LIMIT; i++) expect((await apiLogin(owner, member.email, `owner typo ${i}`)).statusCode).toBe(401);
      const paused = await apiLogin(owner, member.email, member.password);
      expect(paused.statusCode).toBe(429);
      // The device's failures did not touch the email's budget: another browser of the owner still gets in.
      expect((await apiLogin(new Browser(t.app), member.email, member.password)).statusCode).toBe(200);
      t.clock.advanceSeconds(Number(paused.headers["retry-after"]) - 1);
      expect((await apiLogin(owner, member.email, member.password)).statusCode).toBe(429);
      t.clock.advanceSeconds(1);
      expect((await apiLogin(owner, member.email, member.password)).statusCode).toBe(200);
    });
  });

  describe("not telling whether an email exists", () => {
    it("answers an unknown email and another user's wrong password identically from a trusted browser, before and past the limit", async () => {
      const member = await seedMember(t);
      const other = await seedMember(t);
      const owner = await trustedBrowser(member);
      const unknown = `nobody-${newId().slice(0, 8)}@example.com`;
      for (let i = 0; i < EMAIL_LIMIT; i++) {
        const a = await apiLogin(owner, unknown, `guess ${i}`);
        const b = await apiLogin(owner, other.email, `guess ${i}`);
        expect(a.statusCode).toBe(401);
        expect(a.body).toBe(b.body);
        expect(a.headers["set-cookie"]).toBeUndefined();
        expect(b.headers["set-cookie"]).toBeUndefined();
      }
      const a = await apiLogin(owner, unknown, "anything");
      const b = await apiLogin(owner, other.email, other.password);
      expect(a.statusCode).toBe(429);
      expect(b.statusCode).toBe(429);
      // Identical but for the seconds left, which Redis counts in whole seconds and may tick between the two requests.
      type Refusal = { error: string; message: string; details: { retryAfterSeconds: number } };
      const [ra, rb] = [a.json<Refusal>(), b.json<Refusal>()];
      expect({ ...ra, details: {} }).toEqual({ ...rb, details: {} });
      expect(Math.abs(ra.details.retryAfterSeconds - rb.details.retryAfterSeconds)).toBeLessThanOrEqual(1);
      // The owner's own email, from the same browser, is not affected by those failures.
      expect((await apiLogin(owner, member.email, member.password)).statusCode).toBe(200);
    });
  });

  describe("invitation acceptance with the current password", () => {
    async function invite(email: string): Promise<{ path: string; accountId: string }> {
      const created = await createAccountWithAdmin(t.ctx, { name: `Second ${newId().slice(0, 4)}`, adminEmail: email });
      if (!created.ok) throw new Error(created.message);
      return { path: new URL(created.value.invitationUrl).pathname, accountId: created.value.accountId };
    }

    async function memberships(userId: string): Promise<number> {
      return (await t.ctx.db.selectFrom("memberships").select("id").where("user_id", "=", userId).execute()).length;
    }

    it("works from a trusted browser during the lock, and is refused with 429 from a new browser", async () => {
      const member = await seedMember(t);
      const owner = await trustedBrowser(member);
      const second = await invite(member.email);
      await lockOut(member.email);

      const untrusted = await new Browser(t.app).submit(second.path, second.path, { password: member.password });
      expect(untrusted.statusCode).toBe(429);
      expect(await memberships(member.userId)).toBe(1);

      const joined = await owner.submit(second.path, second.path, { password: member.password });
      expect(joined.statusCode).toBe(303);
      expect(joined.headers.location).toBe("/login?notice=joined");
      expect(await memberships(member.userId)).toBe(2);
    });

    it(`counts wrong passwords from a trusted browser against the device: ${DEVICE_LIMIT} answered 401, then 429`, async () => {
      const member = await seedMember(t);
      const owner = await trustedBrowser(member);
      const second = await invite(member.email);
      await lockOut(member.email);
      for (let i = 0; i < DEVICE_LIMIT; i++)
        expect((await owner.submit(second.path, second.path, { password: `owner typo ${i}` })).statusCode).toBe(401);
      const paused = await owner.submit(second.path, second.path, { password: member.password });
      expect(paused.statusCode).toBe(429);
      expect(await memberships(member.userId)).toBe(1);
      // The same device's counter pauses the sign-in form too.
      expect((await apiLogin(owner, member.email, member.password)).statusCode).toBe(429);
    });
  });
});
