import { afterAll, beforeAll, expect, it } from "vitest";
import type { MailMessage, Mailer } from "../src/mail/mailer.js";
import { createMailer } from "../src/mail/transport.js";
import { SmtpSink } from "./helpers/smtp-sink.js";
import { Browser, MemoryMailer, seedMember, startTestApp, type TestApp } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";

/** Latchkey's real SMTP transport (nodemailer), also keeping what it handed over, for the tests' inbox helpers. */
class SmtpTransport extends MemoryMailer {
  constructor(private readonly smtp: Mailer) {
    super();
  }
  override async send(message: MailMessage): Promise<void> {
    await this.smtp.send(message);
    await super.send(message);
  }
  override async close(): Promise<void> {
    await this.smtp.close();
  }
}

const PEOPLE = 6;
const FAILING = "We are having trouble sending email right now.";

/**
 * Issue 11's fault: the SMTP server is down while people sign in. Every link is delivered once it is back, none twice
 * to the same challenge (a newer link's email supersedes the unsent older one), and nothing is lost. Real SMTP
 * (smtp-server, nodemailer) on loopback; time is driven by the test clock, so the outage takes no wall time.
 */
describeEachDialect("SMTP down, then back", (dialect) => {
  let t: TestApp;
  let smtp: SmtpSink;
  beforeAll(async () => {
    smtp = new SmtpSink();
    await smtp.start();
    const transport = new SmtpTransport(
      createMailer({
        smtpUrl: `smtp://127.0.0.1:${smtp.port}`,
        from: "Latchkey <no-reply@localhost>",
        outboxDir: "/nonexistent",
        timeoutMs: 2000,
      }),
    );
    t = await startTestApp(dialect, { mailer: transport });
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.stop();
  });

  it("every link is delivered after it returns, none twice to the same challenge, and each signs in", async () => {
    const people = await Promise.all(Array.from({ length: PEOPLE }, () => seedMember(t)));
    await smtp.stop();

    const browsers: Browser[] = [];
    for (const person of people) {
      const browser = new Browser(t.app);
      const step = await browser.signInWithPassword(person.email, person.password);
      expect(step.statusCode).toBe(303);
      expect((await browser.get("/login/email")).body).toContain(FAILING);
      browsers.push(browser);
    }
    // Two of them ask for a new link while mail is still down: their first email must never arrive.
    t.clock.advanceSeconds(t.config.limits.emailLinkResendCooldownSeconds + 1);
    for (const browser of browsers.slice(0, 2)) {
      expect((await browser.submit("/login/email", "/login/email/resend", {})).statusCode).toBe(200);
    }
    // Retries while it is still down fail too (and wait longer each time).
    t.clock.advanceSeconds(t.config.limits.mailRetryBaseSeconds);
    await t.deliverMail();
    expect(smtp.received).toHaveLength(0);

    await smtp.start();
    // Before any retry is due, someone else signs in: that email goes out at once, which shows mail works again, and
    // the messages waiting out their backoff are sent right behind it — no one waits for their next retry.
    const latecomer = await seedMember(t);
    const late = new Browser(t.app);
    expect((await late.signInWithPassword(latecomer.email, latecomer.password)).statusCode).toBe(303);

    for (const [i, person] of people.entries()) {
      expect(smtp.to(person.email), person.email).toHaveLength(1);
      const [link] = smtp.links(person.email);
      expect(link).toMatch(/^http:\/\/localhost:3000\/login\/email\/[A-Za-z0-9_-]{43}$/);
      const browser = browsers[i]!;
      expect((await browser.get("/login/email")).body).not.toContain(FAILING);
      expect((await browser.get(link!)).statusCode).toBe(303);
      expect((await browser.get("/api/v1/session")).statusCode).toBe(200);
    }
    expect(smtp.to(latecomer.email)).toHaveLength(1);
    // Nothing else went out, and every queued sign-in email is accounted for: sent, or superseded unsent.
    expect(smtp.received).toHaveLength(PEOPLE + 1);
    const rows = await t.ctx.db
      .selectFrom("mail_queue")
      .select(["to_address", "sent_at", "superseded_at", "failed_at"])
      .where(
        "to_address",
        "in",
        people.map((p) => p.email),
      )
      .execute();
    expect(rows).toHaveLength(PEOPLE + 2);
    expect(rows.filter((r) => r.sent_at !== null)).toHaveLength(PEOPLE);
    expect(rows.filter((r) => r.superseded_at !== null && r.sent_at === null)).toHaveLength(2);
    expect(rows.every((r) => r.failed_at === null)).toBe(true);
  });
});
