import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LightMyRequestResponse } from "fastify";
import { describeEachDialect } from "./helpers/dialects.js";
import { Browser, seedMember, startTestApp, type TestApp } from "./helpers/app.js";
import { defaultLimits } from "../src/config.js";
import { hashToken } from "../src/auth/tokens.js";

const LINK_TTL = defaultLimits.emailLinkTtlSeconds;
const CHALLENGE_TTL = defaultLimits.challengeTtlSeconds;
const COOLDOWN = defaultLimits.emailLinkResendCooldownSeconds;
const MAX_SENDS = defaultLimits.emailLinkMaxSendsPerChallenge;

describeEachDialect("email link limits", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  function mailsTo(email: string): number {
    return t.mail.sent.filter((m) => m.to === email).length;
  }

  async function sessionsOf(userId: string): Promise<number> {
    const rows = await t.ctx.db.selectFrom("sessions").select("id").where("user_id", "=", userId).execute();
    return rows.length;
  }

  async function linkRow(link: string) {
    const token = new URL(link).pathname.split("/").pop() as string;
    return t.ctx.db.selectFrom("email_links").selectAll().where("token_hash", "=", hashToken(token)).executeTakeFirstOrThrow();
  }

  /** Password step through the web form; returns the browser (holding the challenge cookie) and the emailed link. */
  async function startWeb(member: { email: string; password: string }): Promise<{ browser: Browser; link: string }> {
    const browser = new Browser(t.app);
    const response = await browser.signInWithPassword(member.email, member.password);
    expect(response.statusCode).toBe(303);
    return { browser, link: t.mail.lastLink(member.email) };
  }

  /** Password step through the API. */
  async function startApi(member: { email: string; password: string }): Promise<{ browser: Browser; link: string }> {
    const browser = new Browser(t.app);
    const response = await browser.request("POST", "/api/v1/login", { json: { email: member.email, password: member.password } });
    expect(response.statusCode).toBe(200);
    return { browser, link: t.mail.lastLink(member.email) };
  }

  function resendWeb(browser: Browser): Promise<LightMyRequestResponse> {
    return browser.submit("/login/email", "/login/email/resend", {});
  }

  function resendApi(browser: Browser): Promise<LightMyRequestResponse> {
    return browser.request("POST", "/api/v1/login/email-link", { json: {} });
  }

  describe("expiry", () => {
    it("signs in with a link opened 9 minutes 59 seconds after it was sent", async () => {
      const member = await seedMember(t);
      const { browser, link } = await startWeb(member);
      t.clock.advanceSeconds(LINK_TTL - 1);
      const response = await browser.get(link);
      expect(response.statusCode).toBe(303);
      expect(response.headers.location).toBe("/");
      expect((await browser.get("/api/v1/session")).statusCode).toBe(200);
    });

    it("refuses a link opened 10 minutes after it was sent with 410 link_expired, and signs nobody in", async () => {
      const member = await seedMember(t);
      const { browser, link } = await startWeb(member);
      t.clock.advanceSeconds(LINK_TTL);
      const response = await browser.get(link);
      expect(response.statusCode).toBe(410);
      expect(response.headers["content-type"]).toMatch(/^text\/html/);
      expect(response.body).toContain("This link has expired");
      expect(response.body).toContain('href="/login"');
      expect(browser.cookies.has("latchkey_session")).toBe(false);
      expect(await sessionsOf(member.userId)).toBe(0);
      expect((await linkRow(link)).used_at).toBeNull();
    });

    it("sends the person back to /login once the challenge is 10 minutes old", async () => {
      const member = await seedMember(t);
      const { browser } = await startWeb(member);
      t.clock.advanceSeconds(CHALLENGE_TTL - 1);
      expect((await browser.get("/login/email")).statusCode).toBe(200);
      t.clock.advanceSeconds(1);
      const page = await browser.get("/login/email");
      expect(page.statusCode).toBe(303);
      expect(page.headers.location).toBe("/login?notice=challenge_expired");
      expect(browser.cookies.has("latchkey_challenge")).toBe(false);
      const login = await browser.get(page.headers.location as string);
      expect(login.statusCode).toBe(200);
      expect(login.body).toContain("Your sign-in took too long and has ended. Please sign in again.");
    });

    it("sends 'Send a new link' on an ended challenge back to /login, without sending mail", async () => {
      const member = await seedMember(t);
      const { browser } = await startWeb(member);
      const csrf = /name="_csrf" value="([^"]+)"/.exec((await browser.get("/login/email")).body)?.[1] as string;
      t.clock.advanceSeconds(CHALLENGE_TTL);
      const mails = mailsTo(member.email);
      const response = await browser.request("POST", "/login/email/resend", { form: { _csrf: csrf } });
      expect(response.statusCode).toBe(303);
      expect(response.headers.location).toBe("/login?notice=challenge_expired");
      expect(mailsTo(member.email)).toBe(mails);
    });

    it("answers the API's new-link request on an ended challenge with 401 challenge_missing", async () => {
      const member = await seedMember(t);
      const { browser } = await startApi(member);
      t.clock.advanceSeconds(CHALLENGE_TTL);
      const response = await resendApi(browser);
      expect(response.statusCode).toBe(401);
      expect(response.json().error).toBe("challenge_missing");
    });

    it("does not let a resent link outlive its challenge", async () => {
      const member = await seedMember(t);
      const { browser } = await startWeb(member);
      t.clock.advanceSeconds(5 * 60);
      expect((await resendWeb(browser)).statusCode).toBe(200);
      const newer = t.mail.lastLink(member.email);
      // The newer link is 5 minutes old, but the sign-in it belongs to has ended.
      t.clock.advanceSeconds(CHALLENGE_TTL - 5 * 60);
      const response = await browser.get(newer);
      expect(response.statusCode).toBe(401);
      expect(response.body).toContain("This sign-in has ended");
      expect(await sessionsOf(member.userId)).toBe(0);
    });
  });

  describe("Send a new link", () => {
    it("voids the older link on the web: the older is refused, the newer signs in", async () => {
      const member = await seedMember(t);
      const { browser, link: older } = await startWeb(member);
      t.clock.advanceSeconds(COOLDOWN);
      const response = await resendWeb(browser);
      expect(response.statusCode).toBe(200);
      expect(response.body).toContain("We sent a new link. Earlier links no longer work.");
      const newer = t.mail.lastLink(member.email);
      expect(newer).not.toBe(older);
      expect(mailsTo(member.email)).toBe(2);
      expect((await linkRow(older)).voided_at).not.toBeNull();

      const refused = await browser.get(older);
      expect(refused.statusCode).toBe(400);
      expect(refused.body).toContain("A newer sign-in link was sent");
      expect(browser.cookies.has("latchkey_session")).toBe(false);

      const ok = await browser.get(newer);
      expect(ok.statusCode).toBe(303);
      expect((await browser.get("/api/v1/session")).json().user.email).toBe(member.email);
    });

    it("voids the older link through POST /api/v1/login/email-link", async () => {
      const member = await seedMember(t);
      const { browser, link: older } = await startApi(member);
      t.clock.advanceSeconds(COOLDOWN);
      const response = await resendApi(browser);
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({ next: "email_link", retryAfterSeconds: COOLDOWN });
      const newer = t.mail.lastLink(member.email);
      expect(newer).not.toBe(older);
      expect((await browser.get(older)).statusCode).toBe(400);
      expect((await browser.get(newer)).statusCode).toBe(303);
      expect(await sessionsOf(member.userId)).toBe(1);
    });

    it(`refuses a new link within ${COOLDOWN} seconds with 429 rate_limited and Retry-After, then allows it`, async () => {
      const member = await seedMember(t);
      const { browser, link } = await startApi(member);
      const immediately = await resendApi(browser);
      expect(immediately.statusCode).toBe(429);
      expect(immediately.json().error).toBe("rate_limited");
      expect(immediately.headers["retry-after"]).toBe(String(COOLDOWN));

      t.clock.advanceSeconds(COOLDOWN - 1);
      const almost = await resendApi(browser);
      expect(almost.statusCode).toBe(429);
      expect(almost.json().error).toBe("rate_limited");
      expect(almost.headers["retry-after"]).toBe("1");
      expect(mailsTo(member.email)).toBe(1);
      // A refused request voids nothing.
      expect((await linkRow(link)).voided_at).toBeNull();

      t.clock.advanceSeconds(1);
      expect((await resendApi(browser)).statusCode).toBe(200);
      expect(mailsTo(member.email)).toBe(2);
    });

    it("refuses the web 'Send a new link' within the cooldown with a 429 page and Retry-After", async () => {
      const member = await seedMember(t);
      const { browser, link } = await startWeb(member);
      t.clock.advanceSeconds(10);
      const response = await resendWeb(browser);
      expect(response.statusCode).toBe(429);
      expect(response.headers["content-type"]).toMatch(/^text\/html/);
      expect(response.headers["retry-after"]).toBe(String(COOLDOWN - 10));
      expect(response.body).toContain("A link was sent moments ago");
      expect(mailsTo(member.email)).toBe(1);
      // The first link still works.
      expect((await browser.get(link)).statusCode).toBe(303);
    });

    it(`sends at most ${MAX_SENDS} links per sign-in, then answers 429 too_many_attempts (API)`, async () => {
      const member = await seedMember(t);
      const { browser } = await startApi(member);
      for (let sent = 1; sent < MAX_SENDS; sent++) {
        t.clock.advanceSeconds(COOLDOWN);
        const response = await resendApi(browser);
        expect(response.statusCode, `send number ${sent + 1}`).toBe(200);
      }
      expect(mailsTo(member.email)).toBe(MAX_SENDS);
      const last = t.mail.lastLink(member.email);

      t.clock.advanceSeconds(COOLDOWN);
      const over = await resendApi(browser);
      expect(over.statusCode).toBe(429);
      expect(over.json().error).toBe("too_many_attempts");
      expect(over.json().message).toMatch(/sign in again/i);
      // Past the limit it stays refused, whatever the wait inside the challenge's life.
      t.clock.advanceSeconds(COOLDOWN * 2);
      const further = await resendApi(browser);
      expect(further.statusCode).toBe(429);
      expect(further.json().error).toBe("too_many_attempts");
      expect(mailsTo(member.email)).toBe(MAX_SENDS);
      const row = await t.ctx.db
        .selectFrom("challenges")
        .select("links_sent")
        .where("user_id", "=", member.userId)
        .executeTakeFirstOrThrow();
      expect(Number(row.links_sent)).toBe(MAX_SENDS);

      // The newest link that was sent still signs in.
      expect((await browser.get(last)).statusCode).toBe(303);
    });

    it(`sends at most ${MAX_SENDS} links per sign-in on the web too`, async () => {
      const member = await seedMember(t);
      const { browser } = await startWeb(member);
      for (let sent = 1; sent < MAX_SENDS; sent++) {
        t.clock.advanceSeconds(COOLDOWN);
        expect((await resendWeb(browser)).statusCode).toBe(200);
      }
      t.clock.advanceSeconds(COOLDOWN);
      const over = await resendWeb(browser);
      expect(over.statusCode).toBe(429);
      expect(over.body).toContain(`We already sent ${MAX_SENDS} links for this sign-in`);
      expect(mailsTo(member.email)).toBe(MAX_SENDS);
    });

    it("starts a fresh allowance when the person signs in again", async () => {
      const member = await seedMember(t);
      const { browser } = await startApi(member);
      for (let sent = 1; sent < MAX_SENDS; sent++) {
        t.clock.advanceSeconds(COOLDOWN);
        await resendApi(browser);
      }
      t.clock.advanceSeconds(COOLDOWN);
      expect((await resendApi(browser)).statusCode).toBe(429);
      const again = await startApi(member);
      expect((await again.browser.get(again.link)).statusCode).toBe(303);
    });

    it("refuses the API's new-link request without a sign-in in progress (401 challenge_missing)", async () => {
      const response = await new Browser(t.app).request("POST", "/api/v1/login/email-link", { json: {} });
      expect(response.statusCode).toBe(401);
      expect(response.json().error).toBe("challenge_missing");
    });
  });

  describe("same browser", () => {
    it("spends nothing when the link is opened without the challenge cookie: the right browser still signs in", async () => {
      const member = await seedMember(t);
      const { browser, link } = await startWeb(member);
      const stranger = new Browser(t.app);
      for (let i = 0; i < 3; i++) {
        const refused = await stranger.get(link);
        expect(refused.statusCode).toBe(403);
        expect(refused.body).toContain("Open this link in the browser where you entered your password");
      }
      expect(stranger.cookies.has("latchkey_session")).toBe(false);
      const row = await linkRow(link);
      expect(row.used_at).toBeNull();
      expect(row.voided_at).toBeNull();
      const challenge = await t.ctx.db
        .selectFrom("challenges")
        .select("consumed_at")
        .where("id", "=", row.challenge_id)
        .executeTakeFirstOrThrow();
      expect(challenge.consumed_at).toBeNull();
      expect(await sessionsOf(member.userId)).toBe(0);

      const ok = await browser.get(link);
      expect(ok.statusCode).toBe(303);
      expect(await sessionsOf(member.userId)).toBe(1);
    });

    it("refuses a link opened in a browser holding another sign-in's challenge, and spends nothing", async () => {
      const member = await seedMember(t);
      const { browser, link } = await startWeb(member);
      // The same person started a second sign-in elsewhere: that browser's challenge is not this link's.
      const other = new Browser(t.app);
      await other.request("POST", "/api/v1/login", { json: { email: member.email, password: member.password } });
      const refused = await other.get(link);
      expect(refused.statusCode).toBe(403);
      expect(other.cookies.has("latchkey_session")).toBe(false);
      expect((await browser.get(link)).statusCode).toBe(303);
    });

    it("refuses a made-up or truncated link with a clear page", async () => {
      const member = await seedMember(t);
      const { browser, link } = await startWeb(member);
      const flipped = link.slice(0, -1) + (link.endsWith("A") ? "B" : "A");
      for (const bad of [link.slice(0, -1), flipped, "/login/email/not-a-token"]) {
        const response = await browser.get(bad);
        expect(response.statusCode).toBeGreaterThanOrEqual(400);
        expect(response.statusCode).toBeLessThan(500);
        expect(response.body).toContain("This link does not work");
      }
      expect((await browser.get(link)).statusCode).toBe(303);
    });
  });
});
