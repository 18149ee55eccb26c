import { performance } from "node:perf_hooks";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { LightMyRequestResponse } from "fastify";
import { describeEachDialect } from "./helpers/dialects.js";
import { Browser, csrfFrom, seedMember, startTestApp, type TestApp } from "./helpers/app.js";
import { defaultLimits } from "../src/config.js";
import { hashPassword } from "../src/auth/passwords.js";
import { newId } from "../src/auth/tokens.js";

const INVALID = { error: "invalid_credentials", message: "The email or password is not correct." };
const LIMIT = defaultLimits.passwordFailuresPerEmail;
const WINDOW = defaultLimits.passwordAttemptWindowSeconds;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

describeEachDialect("password sign-in", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });
  // Every request comes from 127.0.0.1: start each test in a fresh attempt window so the per-IP limit of one test
  // never leaks into the next.
  beforeEach(() => {
    t.clock.advanceSeconds(WINDOW);
  });

  function apiLogin(body: unknown, remoteAddress?: string): Promise<LightMyRequestResponse> {
    return t.app.inject({ method: "POST", url: "/api/v1/login", payload: body as object, ...(remoteAddress ? { remoteAddress } : {}) });
  }

  async function countRows(table: "challenges" | "sessions"): Promise<number> {
    const row = await t.ctx.db
      .selectFrom(table)
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** A user who exists but may only sign in with SSO (no password, SSO membership). */
  async function seedSsoMember(withStalePasswordHash = false): Promise<string> {
    const now = t.clock.now();
    const email = `sso-${newId().slice(0, 8)}@example.com`;
    const accountId = newId();
    const userId = newId();
    await t.ctx.db
      .insertInto("accounts")
      .values({ id: accountId, name: "SSO Co", two_factor_policy: "email_link", created_at: now })
      .execute();
    await t.ctx.db
      .insertInto("users")
      .values({
        id: userId,
        email,
        name: "SSO Person",
        // Even a leftover hash must not let an SSO-only member in with a password.
        password_hash: withStalePasswordHash ? await hashPassword("correct horse battery staple") : null,
        two_factor_method: "email_link",
        created_at: now,
        updated_at: now,
      })
      .execute();
    await t.ctx.db
      .insertInto("memberships")
      .values({
        id: newId(),
        account_id: accountId,
        user_id: userId,
        role: "member",
        sign_in_method: "sso",
        created_at: now,
        last_sign_in_at: null,
      })
      .execute();
    return email;
  }

  describe("a correct password", () => {
    it("answers the API with the next step and a challenge cookie, and emails a link", async () => {
      const member = await seedMember(t);
      const response = await apiLogin({ email: member.email, password: member.password });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({ next: "email_link" });
      expect(response.cookies.map((c) => c.name)).toContain("latchkey_challenge");
      expect(t.mail.last(member.email)).toBeDefined();
    });

    it("sends the web form to 'check your email'", async () => {
      const member = await seedMember(t);
      const browser = new Browser(t.app);
      const response = await browser.signInWithPassword(member.email, member.password);
      expect(response.statusCode).toBe(303);
      expect(response.headers.location).toBe("/login/email");
      const page = await browser.get("/login/email");
      expect(page.statusCode).toBe(200);
      expect(page.body).toContain("Check your email");
      expect(page.body).toContain(member.email);
    });

    it("does not sign in by itself: nothing but the second-factor pages is reachable with only a password", async () => {
      const member = await seedMember(t);
      const browser = new Browser(t.app);
      await browser.signInWithPassword(member.email, member.password);
      expect((await browser.get("/api/v1/session")).statusCode).toBe(401);
      expect((await browser.get("/api/v1/verify")).statusCode).toBe(401);
      const home = await browser.get("/");
      expect(home.statusCode).toBe(303);
      expect(home.headers.location).toBe("/login");
    });
  });

  describe("enumeration", () => {
    it("answers an unknown email, a wrong password and an SSO-only member identically on POST /api/v1/login", async () => {
      const member = await seedMember(t);
      const ssoNoPassword = await seedSsoMember(false);
      const ssoStaleHash = await seedSsoMember(true);
      const cases = [
        { email: `nobody-${newId().slice(0, 6)}@example.com`, password: member.password },
        { email: member.email, password: "not the right password" },
        { email: ssoNoPassword, password: member.password },
        { email: ssoStaleHash, password: "correct horse battery staple" },
      ];
      const challengesBefore = await countRows("challenges");
      const responses = [];
      for (const c of cases) responses.push(await apiLogin(c));
      for (const response of responses) {
        expect(response.statusCode).toBe(401);
        expect(response.json()).toEqual(INVALID);
        expect(response.headers["content-type"]).toBe(responses[0]?.headers["content-type"]);
        expect(response.headers["set-cookie"]).toBeUndefined();
      }
      expect(new Set(responses.map((r) => r.body)).size).toBe(1);
      expect(await countRows("challenges")).toBe(challengesBefore);
      expect(t.mail.sent.filter((m) => cases.some((c) => c.email === m.to))).toHaveLength(0);
    });

    it("answers an unknown email, a wrong password and an SSO-only member identically on the web form", async () => {
      const member = await seedMember(t);
      const sso = await seedSsoMember(false);
      const browser = new Browser(t.app);
      const csrf = csrfFrom((await browser.get("/login")).body);
      const cases = [
        { email: `nobody-${newId().slice(0, 6)}@example.com`, password: member.password },
        { email: member.email, password: "not the right password" },
        { email: sso, password: member.password },
      ];
      const pages: string[] = [];
      for (const c of cases) {
        const challengesBefore = await countRows("challenges");
        const response = await browser.request("POST", "/login", { form: { _csrf: csrf, ...c } });
        expect(response.statusCode).toBe(401);
        expect(response.headers["content-type"]).toMatch(/^text\/html/);
        expect(response.body).toContain("The email or password is not correct.");
        expect(response.cookies.map((x) => x.name)).not.toContain("latchkey_challenge");
        expect(await countRows("challenges")).toBe(challengesBefore);
        // The page echoes the typed email back; everything else is the same byte for byte.
        pages.push(response.body.replaceAll(c.email, "EMAIL"));
      }
      expect(new Set(pages).size).toBe(1);
      expect(browser.cookies.has("latchkey_challenge")).toBe(false);
    });

    it("spends argon2 time on an unknown email too (median at least 40% of a wrong password's)", async () => {
      const member = await seedMember(t);
      // Warm up both paths (the dummy hash is computed lazily on first use).
      await apiLogin({ email: `warm-${newId()}@example.com`, password: "warm up password" });
      await apiLogin({ email: member.email, password: "warm up password" });
      const unknown: number[] = [];
      const wrong: number[] = [];
      for (let i = 0; i < 5; i++) {
        let start = performance.now();
        const a = await apiLogin({ email: `nobody-${newId()}@example.com`, password: `guess number ${i}` });
        unknown.push(performance.now() - start);
        start = performance.now();
        const b = await apiLogin({ email: member.email, password: `guess number ${i}` });
        wrong.push(performance.now() - start);
        expect(a.statusCode).toBe(401);
        expect(b.statusCode).toBe(401);
      }
      expect(median(unknown)).toBeGreaterThanOrEqual(0.4 * median(wrong));
    });
  });

  describe("throttling per email", () => {
    it(`still accepts the right password after ${LIMIT - 1} wrong ones (one below the limit)`, async () => {
      const member = await seedMember(t);
      for (let i = 0; i < LIMIT - 1; i++) expect((await apiLogin({ email: member.email, password: `wrong ${i}` })).statusCode).toBe(401);
      const response = await apiLogin({ email: member.email, password: member.password });
      expect(response.statusCode).toBe(200);
    });

    it(`answers the ${LIMIT}th wrong password with 401, then refuses even the right password with 429 and Retry-After`, async () => {
      const member = await seedMember(t);
      for (let i = 0; i < LIMIT; i++) {
        const wrong = await apiLogin({ email: member.email, password: `wrong ${i}` });
        expect(wrong.statusCode).toBe(401);
        expect(wrong.json()).toEqual(INVALID);
      }
      const challengesBefore = await countRows("challenges");
      const mailsBefore = t.mail.sent.length;
      const atLimit = await apiLogin({ email: member.email, password: member.password });
      expect(atLimit.statusCode).toBe(429);
      expect(atLimit.json().error).toBe("too_many_attempts");
      expect(atLimit.json().message).toMatch(/try again/i);
      const retryAfter = Number(atLimit.headers["retry-after"]);
      expect(retryAfter).toBeGreaterThan(0);
      expect(retryAfter).toBeLessThanOrEqual(WINDOW);
      expect(atLimit.headers["set-cookie"]).toBeUndefined();

      const pastLimit = await apiLogin({ email: member.email, password: member.password });
      expect(pastLimit.statusCode).toBe(429);
      expect(pastLimit.json().error).toBe("too_many_attempts");
      expect(await countRows("challenges")).toBe(challengesBefore);
      expect(t.mail.sent.length).toBe(mailsBefore);
    });

    it("throttles an unknown email exactly like a known one, with the same answer", async () => {
      const member = await seedMember(t);
      const unknown = `nobody-${newId().slice(0, 8)}@example.com`;
      for (let i = 0; i < LIMIT; i++) {
        expect((await apiLogin({ email: unknown, password: `wrong ${i}` })).statusCode).toBe(401);
        expect((await apiLogin({ email: member.email, password: `wrong ${i}` })).statusCode).toBe(401);
      }
      const a = await apiLogin({ email: unknown, password: "anything at all" });
      const b = await apiLogin({ email: member.email, password: member.password });
      expect(a.statusCode).toBe(429);
      expect(b.statusCode).toBe(429);
      expect(a.body).toBe(b.body);
      expect(a.headers["retry-after"]).toBe(b.headers["retry-after"]);
    });

    it("refuses the web form with a 429 page and Retry-After once the limit is reached", async () => {
      const member = await seedMember(t);
      const browser = new Browser(t.app);
      const csrf = csrfFrom((await browser.get("/login")).body);
      for (let i = 0; i < LIMIT; i++) {
        expect(
          (await browser.request("POST", "/login", { form: { _csrf: csrf, email: member.email, password: `wrong ${i}` } })).statusCode,
        ).toBe(401);
      }
      const refused = await browser.request("POST", "/login", { form: { _csrf: csrf, email: member.email, password: member.password } });
      expect(refused.statusCode).toBe(429);
      expect(refused.headers["content-type"]).toMatch(/^text\/html/);
      expect(refused.body).toContain("Too many sign-in attempts");
      expect(Number(refused.headers["retry-after"])).toBeGreaterThan(0);
      expect(browser.cookies.has("latchkey_challenge")).toBe(false);
    });

    it("lets the person in again once the window has passed", async () => {
      const member = await seedMember(t);
      for (let i = 0; i < LIMIT; i++) await apiLogin({ email: member.email, password: `wrong ${i}` });
      const refused = await apiLogin({ email: member.email, password: member.password });
      expect(refused.statusCode).toBe(429);
      const retryAfter = Number(refused.headers["retry-after"]);
      t.clock.advanceSeconds(retryAfter - 1);
      expect((await apiLogin({ email: member.email, password: member.password })).statusCode).toBe(429);
      t.clock.advanceSeconds(1);
      const response = await apiLogin({ email: member.email, password: member.password });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({ next: "email_link" });
    });

    it("counts the email case-insensitively, so changing its case does not reset the limit", async () => {
      const member = await seedMember(t);
      for (let i = 0; i < LIMIT; i++) {
        const variant = i % 2 === 0 ? member.email.toUpperCase() : member.email;
        expect((await apiLogin({ email: variant, password: `wrong ${i}` })).statusCode).toBe(401);
      }
      expect((await apiLogin({ email: ` ${member.email.toUpperCase()} `, password: member.password })).statusCode).toBe(429);
    });

    it("clears the failures after a successful password", async () => {
      const member = await seedMember(t);
      for (let i = 0; i < LIMIT - 1; i++) await apiLogin({ email: member.email, password: `wrong ${i}` });
      expect((await apiLogin({ email: member.email, password: member.password })).statusCode).toBe(200);
      for (let i = 0; i < LIMIT - 1; i++)
        expect((await apiLogin({ email: member.email, password: `wrong again ${i}` })).statusCode).toBe(401);
      expect((await apiLogin({ email: member.email, password: member.password })).statusCode).toBe(200);
    });
  });

  describe("throttling per IP address", () => {
    it(`allows ${defaultLimits.passwordAttemptsPerIp} attempts from one address, then answers 429 whatever the email`, async () => {
      const member = await seedMember(t);
      const ip = "203.0.113.7";
      const limit = defaultLimits.passwordAttemptsPerIp;
      // In parallel batches (argon2 runs off the event loop): the counter is atomic, so the total is what counts.
      const statuses: number[] = [];
      for (let i = 0; i < limit - 1; i += 11) {
        const batch = Array.from({ length: Math.min(11, limit - 1 - i) }, (_, j) =>
          apiLogin({ email: `spray-${i + j}@example.com`, password: "password guess" }, ip),
        );
        statuses.push(...(await Promise.all(batch)).map((r) => r.statusCode));
      }
      expect(statuses).toEqual(Array.from({ length: limit - 1 }, () => 401));
      // The last allowed attempt, with the right password, still works.
      expect((await apiLogin({ email: member.email, password: member.password }, ip)).statusCode).toBe(200);
      const refused = await apiLogin({ email: member.email, password: member.password }, ip);
      expect(refused.statusCode).toBe(429);
      expect(refused.json().error).toBe("too_many_attempts");
      expect(Number(refused.headers["retry-after"])).toBeGreaterThan(0);
      // Another address is not affected.
      expect((await apiLogin({ email: member.email, password: member.password }, "203.0.113.8")).statusCode).toBe(200);
    }, 180_000);
  });
});
