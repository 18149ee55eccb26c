import { afterAll, beforeAll, beforeEach, expect, it } from "vitest";
import type { MailMessage } from "../src/mail/mailer.js";
import { Browser, MemoryMailer, seedMember, startTestApp, type TestApp } from "./helpers/app.js";
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

const FAILING = "We are having trouble sending email right now. We keep trying: your link will arrive as soon as delivery works again.";

/**
 * Mail goes through the queue (issue 11): when the mail server is down, signing in and "Send a new link" answer as
 * usual, the waiting page says delivery is failing, and the newest link arrives once mail works again — never an
 * older, voided one. (Before, the password step and "Send a new link" answered 503 `mail_unavailable` and the person
 * had to try again by hand.)
 */
describeEachDialect("email link when mail fails", (dialect) => {
  let t: TestApp;
  const mailer = new FlakyMailer();
  beforeAll(async () => {
    // Jitter fixed at its top: each retry waits the whole backoff.
    t = await startTestApp(dialect, { mailer, mailSender: { random: () => 0.999 } });
  });
  afterAll(async () => {
    await t?.close();
  });
  beforeEach(() => {
    mailer.down = false;
  });

  /** Mail works again and every retry is due: what the sender's next look finds. */
  async function mailBack(): Promise<void> {
    mailer.down = false;
    t.clock.advanceSeconds(t.config.limits.mailRetryMaxSeconds);
    await t.deliverMail();
  }

  async function signedIn(browser: Browser): Promise<boolean> {
    return (await browser.get("/api/v1/session")).statusCode === 200;
  }

  function sentTo(email: string): MailMessage[] {
    return t.mail.sent.filter((m) => m.to === email);
  }

  it("web: with mail down the password step still leads to “check your email”, which says delivery is failing; the link arrives once mail works", async () => {
    const member = await seedMember(t);
    const browser = new Browser(t.app);
    mailer.down = true;
    const step = await browser.signInWithPassword(member.email, member.password);
    expect(step.statusCode).toBe(303);
    expect(step.headers.location).toBe("/login/email");
    const page = await browser.get("/login/email");
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain("Check your email");
    expect(page.body).toContain(FAILING);
    expect(sentTo(member.email)).toHaveLength(0);

    await mailBack();
    expect(sentTo(member.email)).toHaveLength(1);
    const healthy = await browser.get("/login/email");
    expect(healthy.body).not.toContain(FAILING);
    expect((await browser.get(t.mail.lastLink(member.email))).statusCode).toBe(303);
    expect(await signedIn(browser)).toBe(true);
  });

  it("the waiting page says nothing of trouble while the link is merely on its way or delivered", async () => {
    const member = await seedMember(t);
    const browser = new Browser(t.app);
    expect((await browser.signInWithPassword(member.email, member.password)).statusCode).toBe(303);
    expect((await browser.get("/login/email")).body).not.toContain("trouble sending email");
  });

  it("web: “Send a new link” with mail down answers 200, voids the old link and supersedes its unsent email: only the newest link is ever delivered", async () => {
    const member = await seedMember(t);
    const browser = new Browser(t.app);
    mailer.down = true;
    expect((await browser.signInWithPassword(member.email, member.password)).statusCode).toBe(303);
    t.clock.advanceSeconds(t.config.limits.emailLinkResendCooldownSeconds + 1);
    const resent = await browser.submit("/login/email", "/login/email/resend", {});
    expect(resent.statusCode).toBe(200);
    expect(resent.body).toContain("We sent a new link. Earlier links no longer work.");
    // Its first attempt was made as the answer went out, and failed too.
    expect((await browser.get("/login/email")).body).toContain(FAILING);
    const challenge = await t.ctx.db.selectFrom("challenges").select("id").where("user_id", "=", member.userId).executeTakeFirstOrThrow();
    const rows = await t.ctx.db
      .selectFrom("mail_queue")
      .select(["superseded_at", "sent_at", "body_sealed"])
      .where("dedupe_key", "=", `challenge:${challenge.id}`)
      .orderBy("created_at")
      .orderBy("superseded_at")
      .execute();
    expect(rows).toHaveLength(2);
    expect(rows[0]!.superseded_at).not.toBeNull();
    expect(rows[0]!.body_sealed).toBeNull();
    expect(rows[1]!.superseded_at).toBeNull();

    await mailBack();
    expect(sentTo(member.email)).toHaveLength(1);
    const newest = t.mail.lastLink(member.email);
    expect((await browser.get(newest)).statusCode).toBe(303);
    expect(await signedIn(browser)).toBe(true);
  });

  it("API: with mail down /api/v1/login and /api/v1/login/email-link answer 200; the newest link arrives once mail works", async () => {
    const member = await seedMember(t);
    const browser = new Browser(t.app);
    mailer.down = true;
    const step = await browser.request("POST", "/api/v1/login", { json: { email: member.email, password: member.password } });
    expect(step.statusCode).toBe(200);
    expect(step.json()).toEqual({ next: "email_link" });
    t.clock.advanceSeconds(t.config.limits.emailLinkResendCooldownSeconds + 1);
    const again = await browser.request("POST", "/api/v1/login/email-link", { json: {} });
    expect(again.statusCode, again.body).toBe(200);
    await mailBack();
    expect(sentTo(member.email)).toHaveLength(1);
    expect((await browser.get(t.mail.lastLink(member.email))).statusCode).toBe(303);
    expect(await signedIn(browser)).toBe(true);
  });

  it("an email given up after the most attempts is said so on the waiting page, and “Send a new link” queues a fresh one", async () => {
    const { limits } = t.config;
    const saved = { ...limits };
    Object.assign(limits, { mailMaxAttempts: 3, mailRetryBaseSeconds: 1, mailRetryMaxSeconds: 2 });
    try {
      const member = await seedMember(t);
      const browser = new Browser(t.app);
      mailer.down = true;
      const before = mailer.attempts;
      expect((await browser.signInWithPassword(member.email, member.password)).statusCode).toBe(303);
      for (let i = 1; i < limits.mailMaxAttempts; i++) {
        t.clock.advanceSeconds(limits.mailRetryMaxSeconds);
        await t.deliverMail();
      }
      expect(mailer.attempts - before).toBe(3);
      const row = await t.ctx.db
        .selectFrom("mail_queue")
        .select(["attempts", "failed_at", "body_sealed", "last_error"])
        .where("to_address", "=", member.email)
        .executeTakeFirstOrThrow();
      expect(row).toMatchObject({ attempts: 3, body_sealed: null });
      expect(row.failed_at).not.toBeNull();
      expect(row.last_error).toContain("ECONNREFUSED");
      const page = await browser.get("/login/email");
      expect(page.body).toContain("We could not deliver the email with your link.");
      // Given up means given up: later looks do not try it again.
      t.clock.advanceSeconds(limits.mailRetryMaxSeconds);
      await t.deliverMail();
      expect(mailer.attempts - before).toBe(3);

      mailer.down = false;
      t.clock.advanceSeconds(limits.emailLinkResendCooldownSeconds + 1);
      const resent = await browser.submit("/login/email", "/login/email/resend", {});
      expect(resent.statusCode).toBe(200);
      expect(resent.body).not.toContain("could not deliver");
      expect(sentTo(member.email)).toHaveLength(1);
      expect((await browser.get(t.mail.lastLink(member.email))).statusCode).toBe(303);
    } finally {
      Object.assign(limits, saved);
    }
  });
});
