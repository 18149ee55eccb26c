import { afterAll, beforeAll, beforeEach, expect, it } from "vitest";
import type { MailMessage } from "../src/mail/mailer.js";
import type { Database } from "../src/db/schema.js";
import { Browser, csrfFrom, MemoryMailer, rowCounts, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";

/** A mailer whose SMTP server can be switched off. */
class FlakyMailer extends MemoryMailer {
  down = false;
  override async send(message: MailMessage): Promise<void> {
    if (this.down) throw new Error("connect ECONNREFUSED 127.0.0.1:25");
    await super.send(message);
  }
}

const TABLES: ReadonlyArray<keyof Database> = ["users", "email_changes", "sessions", "audit_events"];

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

  it("a link that cannot be sent is a 503 and no pending change; once mail works the same request goes through", async () => {
    const member = await seedMember(t);
    const here = await signedInBrowser(t, member);
    const target = `moved-${member.userId.slice(0, 8)}@example.org`;
    const before = await rowCounts(t, TABLES);
    mailer.down = true;
    const api = await here.request("POST", "/api/v1/email-change", { json: { email: target } });
    expect(api.statusCode).toBe(503);
    expect(api.json()).toMatchObject({ error: "mail_unavailable" });
    const page = await here.get("/settings/email");
    const form = await here.request("POST", "/settings/email", { form: { _csrf: csrfFrom(page.body), email: target } });
    expect(form.statusCode).toBe(503);
    expect(form.body).toContain("nothing was changed");
    expect(await rowCounts(t, TABLES)).toEqual(before);
    mailer.down = false;
    expect((await here.request("POST", "/api/v1/email-change", { json: { email: target } })).statusCode).toBe(200);
    expect(t.mail.last(target)).toBeDefined();
  });

  it("a confirmation whose notices cannot be handed over changes nothing and leaves the link usable", async () => {
    const member = await seedMember(t);
    const here = await signedInBrowser(t, member);
    const target = `moved2-${member.userId.slice(0, 8)}@example.org`;
    expect((await here.request("POST", "/api/v1/email-change", { json: { email: target } })).statusCode).toBe(200);
    const link = t.mail.lastLink(target);
    const confirmer = new Browser(t.app);
    const page = await confirmer.get(link);
    const before = await rowCounts(t, TABLES);
    mailer.down = true;
    const failed = await confirmer.request("POST", link, { form: { _csrf: csrfFrom(page.body) } });
    expect(failed.statusCode).toBe(503);
    expect(await rowCounts(t, TABLES)).toEqual(before);
    expect((await here.get("/api/v1/session")).statusCode).toBe(200);
    mailer.down = false;
    const again = await confirmer.request("POST", link, { form: { _csrf: csrfFrom(page.body) } });
    expect(again.statusCode).toBe(200);
    const user = await t.ctx.db.selectFrom("users").select("email").where("id", "=", member.userId).executeTakeFirstOrThrow();
    expect(user.email).toBe(target);
  });
});
