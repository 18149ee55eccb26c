import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, beforeEach, expect, it } from "vitest";
import type { MailMessage } from "../src/mail/mailer.js";
import { Browser, csrfFrom, MemoryMailer, seedMember, startTestApp, type TestApp } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";

/** A mailer whose SMTP server can be switched off. */
class FlakyMailer extends MemoryMailer {
  down = false;
  attempts = 0;
  override async send(message: MailMessage): Promise<void> {
    this.attempts += 1;
    if (this.down) throw new Error("connect ECONNREFUSED 127.0.0.1:25");
    await super.send(message);
  }
}

const RESEND_FAILED = "We could not send the email right now. Try again in a minute; your earlier link still works.";

/**
 * "Send a new link" voided the old link before sending and answered 500 when SMTP failed, so the person was left
 * with no working link and an error page (review issue 7). Now: send first, void after; a mail failure is a 503
 * `mail_unavailable` that keeps what worked.
 */
describeEachDialect("email link when mail fails", (dialect) => {
  let t: TestApp;
  const mailer = new FlakyMailer();
  beforeAll(async () => {
    t = await startTestApp(dialect, { mailer });
  });
  afterAll(async () => {
    await t?.close();
  });
  beforeEach(() => {
    mailer.down = false;
  });

  /** Password step in a fresh browser with mail working; returns the browser and its first link. */
  async function signInStarted(): Promise<{ browser: Browser; email: string; link: string }> {
    const member = await seedMember(t);
    const browser = new Browser(t.app);
    const step = await browser.signInWithPassword(member.email, member.password);
    expect(step.statusCode).toBe(303);
    return { browser, email: member.email, link: t.mail.lastLink(member.email) };
  }

  async function signedIn(browser: Browser): Promise<boolean> {
    return (await browser.get("/api/v1/session")).statusCode === 200;
  }

  function resendWeb(browser: Browser): Promise<LightMyRequestResponse> {
    return browser.submit("/login/email", "/login/email/resend", {});
  }

  it("web: a failed “Send a new link” answers 503 with a clear message on the check-email page, and the earlier link still signs in", async () => {
    const { browser, link } = await signInStarted();
    t.clock.advanceSeconds(t.config.limits.emailLinkResendCooldownSeconds + 1);
    mailer.down = true;
    const failed = await resendWeb(browser);
    expect(failed.statusCode).toBe(503);
    expect(failed.body).toContain(RESEND_FAILED);
    expect(failed.body).toContain("Send a new link");
    mailer.down = false;
    const used = await browser.get(link);
    expect(used.statusCode, used.body.slice(0, 300)).toBe(303);
    expect(await signedIn(browser)).toBe(true);
  });

  it("web: right after a failed send, “Send a new link” works again at once, and then only the new link works", async () => {
    const { browser, email, link } = await signInStarted();
    t.clock.advanceSeconds(t.config.limits.emailLinkResendCooldownSeconds + 1);
    mailer.down = true;
    expect((await resendWeb(browser)).statusCode).toBe(503);
    mailer.down = false;
    const resent = await resendWeb(browser);
    expect(resent.statusCode).toBe(200);
    const newest = t.mail.lastLink(email);
    expect(newest).not.toBe(link);
    expect((await browser.get(link)).statusCode).toBe(400);
    expect((await browser.get(newest)).statusCode).toBe(303);
  });

  it("API: a failed resend answers 503 mail_unavailable; the earlier link still signs in", async () => {
    const { browser, link } = await signInStarted();
    t.clock.advanceSeconds(t.config.limits.emailLinkResendCooldownSeconds + 1);
    mailer.down = true;
    const failed = await browser.request("POST", "/api/v1/login/email-link", { json: {} });
    expect(failed.statusCode).toBe(503);
    expect(failed.json()).toEqual({ error: "mail_unavailable", message: RESEND_FAILED });
    mailer.down = false;
    expect((await browser.get(link)).statusCode).toBe(303);
    expect(await signedIn(browser)).toBe(true);
  });

  it("web: when the first link cannot be sent, the password step answers 503 and keeps the sign-in, so “Send a new link” finishes it", async () => {
    const member = await seedMember(t);
    const browser = new Browser(t.app);
    mailer.down = true;
    const step = await browser.signInWithPassword(member.email, member.password);
    expect(step.statusCode).toBe(503);
    expect(step.body).toContain("We could not send the email");
    expect(step.body).toContain("Send a new link");
    mailer.down = false;
    // The resend form on that 503 page works as it stands: no waiting, no second password.
    const resent = await browser.request("POST", "/login/email/resend", { form: { _csrf: csrfFrom(step.body) } });
    expect(resent.statusCode).toBe(200);
    expect((await browser.get(t.mail.lastLink(member.email))).statusCode).toBe(303);
    expect(await signedIn(browser)).toBe(true);
  });

  it("API: when the first link cannot be sent, /api/v1/login answers 503 mail_unavailable and /api/v1/login/email-link sends it later", async () => {
    const member = await seedMember(t);
    const browser = new Browser(t.app);
    mailer.down = true;
    const step = await browser.request("POST", "/api/v1/login", { json: { email: member.email, password: member.password } });
    expect(step.statusCode).toBe(503);
    expect(step.json().error).toBe("mail_unavailable");
    mailer.down = false;
    const sent = await browser.request("POST", "/api/v1/login/email-link", { json: {} });
    expect(sent.statusCode, sent.body).toBe(200);
    expect((await browser.get(t.mail.lastLink(member.email))).statusCode).toBe(303);
    expect(await signedIn(browser)).toBe(true);
  });
});
