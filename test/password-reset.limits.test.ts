import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, expect, it } from "vitest";
import { defaultLimits } from "../src/config.js";
import { Browser, csrfFrom, rowCounts, seedMember, startTestApp, type TestApp } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";

const PER_EMAIL = defaultLimits.passwordResetRequestsPerEmail;
const PER_IP = defaultLimits.passwordResetRequestsPerIp;
const WINDOW = defaultLimits.passwordResetRequestWindowSeconds;

/**
 * "Forgot your password?" is limited per address (each request may send an email) and per IP (so nobody makes Latchkey
 * mail many inboxes), in the attempt store every instance shares: the database, or Redis. Unknown addresses count like
 * known ones, so the limit tells nothing either.
 */
describeEachDialect(
  "password reset request limits",
  [
    { label: "database counters", options: { redis: false } },
    { label: "Redis counters", options: { redis: true } },
  ],
  (dialect, { redis }) => {
    let t: TestApp;
    let nextIp = 0;
    beforeAll(async () => {
      t = await startTestApp(dialect, { redis });
    });
    afterAll(async () => {
      await t?.close();
    });

    /** A fresh address each time unless one is given: the per-IP limit is not what is measured then. */
    const freshIp = (): string => {
      nextIp += 1;
      return `10.9.${(nextIp >> 8) & 255}.${nextIp & 255}`;
    };

    async function ask(email: string, ip = freshIp()): Promise<LightMyRequestResponse> {
      const response = await t.app.inject({
        method: "POST",
        url: "/api/v1/password-reset",
        remoteAddress: ip,
        headers: { "content-type": "application/json" },
        payload: JSON.stringify({ email }),
      });
      await t.app.afterResponse.settled();
      return response;
    }

    it(`${PER_EMAIL} requests for one address an hour; one more is refused with Retry-After and sends nothing`, async () => {
      const member = await seedMember(t);
      for (let i = 0; i < PER_EMAIL; i++) expect((await ask(member.email)).statusCode).toBe(202);
      expect(t.mail.sent.filter((m) => m.to === member.email)).toHaveLength(PER_EMAIL);
      const before = await rowCounts(t, ["password_resets", "audit_events"]);
      const refused = await ask(member.email.toUpperCase());
      expect(refused.statusCode).toBe(429);
      expect(refused.json()).toMatchObject({ error: "too_many_attempts" });
      expect(refused.json().message).toContain("Too many password reset requests for this address");
      expect(Number(refused.headers["retry-after"])).toBeGreaterThan(0);
      expect(Number(refused.headers["retry-after"])).toBeLessThanOrEqual(WINDOW);
      expect(await rowCounts(t, ["password_resets", "audit_events"])).toEqual(before);
      // The newest link sent before the limit still works.
      const token = new URL(t.mail.lastLink(member.email)).pathname.split("/").pop();
      const reset = await new Browser(t.app).request("POST", "/api/v1/password-reset/confirm", {
        json: { token, password: "a completely new passphrase" },
      });
      expect(reset.statusCode).toBe(204);
    });

    it("an unknown address is limited exactly like a known one: same statuses, same answers", async () => {
      const member = await seedMember(t);
      const known: LightMyRequestResponse[] = [];
      const unknown: LightMyRequestResponse[] = [];
      for (let i = 0; i <= PER_EMAIL; i++) {
        known.push(await ask(member.email));
        unknown.push(await ask(`nobody-${member.userId}@example.com`));
      }
      expect(known.map((r) => r.statusCode)).toEqual([...Array(PER_EMAIL).fill(202), 429]);
      expect(unknown.map((r) => r.statusCode)).toEqual(known.map((r) => r.statusCode));
      expect(unknown.map((r) => r.body)).toEqual(known.map((r) => r.body));
    });

    it(`${PER_IP} requests from one IP address an hour, whatever the addresses; one more is refused, other IPs are not`, async () => {
      const ip = freshIp();
      const member = await seedMember(t);
      for (let i = 0; i < PER_IP - 1; i++) expect((await ask(`someone-${i}@example.com`, ip)).statusCode).toBe(202);
      expect((await ask(member.email, ip)).statusCode).toBe(202);
      const sent = t.mail.sent.length;
      const refused = await ask(member.email, ip);
      expect(refused.statusCode).toBe(429);
      expect(refused.json().message).toContain("from your network");
      expect(t.mail.sent.length).toBe(sent);
      expect((await ask(member.email, freshIp())).statusCode).toBe(202);
    });

    it("the page answers a refused request with the form, its message and 429", async () => {
      const member = await seedMember(t);
      for (let i = 0; i < PER_EMAIL; i++) expect((await ask(member.email)).statusCode).toBe(202);
      const browser = new Browser(t.app);
      const form = await browser.get("/login/forgot");
      const refused = await browser.request("POST", "/login/forgot", { form: { _csrf: csrfFrom(form.body), email: member.email } });
      expect(refused.statusCode).toBe(429);
      expect(refused.headers["retry-after"]).toBeDefined();
      expect(refused.body).toContain('role="alert"');
      expect(refused.body).toContain("Too many password reset requests for this address");
      expect(refused.body).toContain(`value="${member.email}"`);
    });

    // Redis counters expire by Redis's own clock; the window is checked with the database store and the test clock.
    it.skipIf(redis)("the limit lifts when the hour is over", async () => {
      const member = await seedMember(t);
      for (let i = 0; i < PER_EMAIL; i++) expect((await ask(member.email)).statusCode).toBe(202);
      expect((await ask(member.email)).statusCode).toBe(429);
      t.clock.advanceSeconds(WINDOW - 1);
      expect((await ask(member.email)).statusCode).toBe(429);
      t.clock.advanceSeconds(1);
      expect((await ask(member.email)).statusCode).toBe(202);
    });
  },
);
