import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDialect } from "./helpers/dialects.js";
import { Browser, seedMember, startTestApp, type TestApp } from "./helpers/app.js";

describeEachDialect("email link sign-in", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  it("signs in only in the browser that entered the password, once", async () => {
    const member = await seedMember(t);
    const browser = new Browser(t.app);
    const step = await browser.signInWithPassword(member.email, member.password);
    expect(step.statusCode).toBe(303);
    expect(step.headers.location).toBe("/login/email");
    const link = t.mail.lastLink(member.email);
    expect(link.startsWith(`${t.config.publicUrl.origin}/login/email/`)).toBe(true);

    const stranger = new Browser(t.app);
    const refused = await stranger.get(link);
    expect(refused.statusCode).toBe(403);
    expect(refused.body).toContain("Open this link in the browser where you entered your password");
    expect(stranger.cookies.size).toBe(0);

    const ok = await browser.get(link);
    expect(ok.statusCode).toBe(303);
    expect(ok.headers.location).toBe("/");
    const session = await browser.get("/api/v1/session");
    expect(session.statusCode).toBe(200);
    expect(session.json().user.email).toBe(member.email);

    const again = await browser.get(link);
    expect(again.statusCode).toBe(410);
  });

  it("20 concurrent redemptions of one link give exactly one session", async () => {
    const member = await seedMember(t);
    const browser = new Browser(t.app);
    await browser.signInWithPassword(member.email, member.password);
    const link = t.mail.lastLink(member.email);
    const cookie = browser.cookieHeader();
    const path = new URL(link).pathname;
    const responses = await Promise.all(Array.from({ length: 20 }, () => t.app.inject({ method: "GET", url: path, headers: { cookie } })));
    expect(responses.filter((r) => r.statusCode === 303)).toHaveLength(1);
    expect(responses.filter((r) => r.statusCode === 410)).toHaveLength(19);
    const sessions = await t.ctx.db.selectFrom("sessions").select("id").where("user_id", "=", member.userId).execute();
    expect(sessions).toHaveLength(1);
  });
});
