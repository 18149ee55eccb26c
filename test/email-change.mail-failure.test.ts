import { afterAll, beforeAll, beforeEach, expect, it } from "vitest";
import type { MailMessage } from "../src/mail/mailer.js";
import { Browser, csrfFrom, MemoryMailer, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";

/** A mailer whose SMTP server can be switched off. */
class FlakyMailer extends MemoryMailer {
  down = false;
  override async send(message: MailMessage): Promise<void> {
    if (this.down) throw new Error("connect ECONNREFUSED 127.0.0.1:25");
    await super.send(message);
  }
}

/**
 * Mail goes through the durable queue (issue 11): a mail server that is down delays the emails of an address change
 * and refuses nothing. The request and the confirmation go through; their emails, queued in the same transaction,
 * arrive once mail works again.
 */
describeEachDialect("changing the email address when mail fails", (dialect) => {
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

  /** Mail works again and every retry is due. */
  async function mailBack(): Promise<void> {
    mailer.down = false;
    t.clock.advanceSeconds(t.config.limits.mailRetryMaxSeconds);
    await t.deliverMail();
  }

  it("with mail down the request is taken (the change pending) and its link and notice arrive once mail works", async () => {
    const member = await seedMember(t);
    const here = await signedInBrowser(t, member);
    const target = `moved-${member.userId.slice(0, 8)}@example.org`;
    mailer.down = true;
    const api = await here.request("POST", "/api/v1/email-change", { json: { email: target } });
    expect(api.statusCode, api.body).toBe(200);
    expect(api.json()).toMatchObject({ pending: { newEmail: target } });
    expect(t.mail.last(target)).toBeUndefined();
    await mailBack();
    expect(t.mail.last(target)?.subject).toBeDefined();
    expect(t.mail.last(member.email)).toBeDefined();
    const link = t.mail.lastLink(target);
    const confirmer = new Browser(t.app);
    const page = await confirmer.get(link);
    expect((await confirmer.request("POST", link, { form: { _csrf: csrfFrom(page.body) } })).statusCode).toBe(200);
    const user = await t.ctx.db.selectFrom("users").select("email").where("id", "=", member.userId).executeTakeFirstOrThrow();
    expect(user.email).toBe(target);
  });

  it("with mail down the confirmation changes the address; both notices arrive once mail works", async () => {
    const member = await seedMember(t);
    const here = await signedInBrowser(t, member);
    const target = `moved2-${member.userId.slice(0, 8)}@example.org`;
    expect((await here.request("POST", "/api/v1/email-change", { json: { email: target } })).statusCode).toBe(200);
    const link = t.mail.lastLink(target);
    const confirmer = new Browser(t.app);
    const page = await confirmer.get(link);
    const sentBefore = t.mail.sent.length;
    mailer.down = true;
    const confirmed = await confirmer.request("POST", link, { form: { _csrf: csrfFrom(page.body) } });
    expect(confirmed.statusCode).toBe(200);
    const user = await t.ctx.db.selectFrom("users").select("email").where("id", "=", member.userId).executeTakeFirstOrThrow();
    expect(user.email).toBe(target);
    expect(t.mail.sent.length).toBe(sentBefore);
    await mailBack();
    const notices = t.mail.sent.slice(sentBefore).map((m) => m.to);
    expect(notices.sort()).toEqual([member.email, target].sort());
  });
});
