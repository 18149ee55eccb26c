import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDialect } from "./helpers/dialects.js";
import { Browser, csrfFrom, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";

describeEachDialect("changing the password", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  async function submit(browser: Browser, currentPassword: string, newPassword: string): Promise<Awaited<ReturnType<Browser["request"]>>> {
    const page = await browser.get("/settings/password");
    return browser.request("POST", "/settings/password", { form: { _csrf: csrfFrom(page.body), currentPassword, newPassword } });
  }

  it("needs the current password and a valid new one, and changes nothing otherwise", async () => {
    const member = await seedMember(t);
    const browser = await signedInBrowser(t, member);
    const before = await t.ctx.db.selectFrom("users").select("password_hash").where("id", "=", member.userId).executeTakeFirstOrThrow();
    const wrong = await submit(browser, "not my password", "a brand new passphrase");
    expect(wrong.statusCode).toBe(401);
    expect(wrong.body).toContain("Your current password is not right.");
    const short = await submit(browser, member.password, "short");
    expect(short.statusCode).toBe(422);
    expect(short.body).toContain("at least 8");
    const common = await submit(browser, member.password, "password1");
    expect(common.statusCode).toBe(422);
    const after = await t.ctx.db.selectFrom("users").select("password_hash").where("id", "=", member.userId).executeTakeFirstOrThrow();
    expect(after.password_hash).toBe(before.password_hash);
  });

  it("signs out every other browser, keeps this one, and emails the person", async () => {
    const member = await seedMember(t);
    const here = await signedInBrowser(t, member);
    const elsewhere = await signedInBrowser(t, member);
    const changed = await submit(here, member.password, "a brand new passphrase");
    expect(changed.statusCode).toBe(303);
    expect((await here.get("/api/v1/session")).statusCode).toBe(200);
    expect((await elsewhere.get("/api/v1/session")).statusCode).toBe(401);
    expect(t.mail.last(member.email)?.subject).toContain("Your password was changed");
    const old = await new Browser(t.app).request("POST", "/api/v1/login", { json: { email: member.email, password: member.password } });
    expect(old.statusCode).toBe(401);
    const fresh = await new Browser(t.app).request("POST", "/api/v1/login", {
      json: { email: member.email, password: "a brand new passphrase" },
    });
    expect(fresh.statusCode).toBe(200);
    const events = await t.ctx.db
      .selectFrom("audit_events")
      .select("type")
      .where("user_id", "=", member.userId)
      .where("type", "=", "password.changed")
      .execute();
    expect(events).toHaveLength(1);
  });

  it("ends a sign-in that passed the old password but has not finished", async () => {
    const member = await seedMember(t);
    const here = await signedInBrowser(t, member);
    const halfway = new Browser(t.app);
    await halfway.signInWithPassword(member.email, member.password);
    const link = t.mail.lastLink(member.email);
    await submit(here, member.password, "another new passphrase");
    const late = await halfway.get(link);
    expect(late.statusCode).toBe(401);
    expect((await halfway.get("/api/v1/session")).statusCode).toBe(401);
  });
});
