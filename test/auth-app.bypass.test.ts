import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDialect } from "./helpers/dialects.js";
import { Browser, csrfFrom, seedMember, startTestApp, type TestApp } from "./helpers/app.js";
import { enableAuthApp } from "./helpers/auth-app.js";

describeEachDialect("an auth-app user cannot finish with an email link", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  it("asking for a sign-in link on an auth-app challenge is refused and sends nothing (API and form)", async () => {
    const member = await seedMember(t);
    await enableAuthApp(t, member);
    const api = new Browser(t.app);
    expect((await api.request("POST", "/api/v1/login", { json: { email: member.email, password: member.password } })).json()).toEqual({
      next: "auth_app",
    });
    const sentBefore = t.mail.sent.length;
    const asked = await api.request("POST", "/api/v1/login/email-link", { json: {} });
    expect(asked.statusCode).toBe(409);
    expect(asked.json().error).toBe("auth_app_required");
    const web = new Browser(t.app);
    await web.signInWithPassword(member.email, member.password);
    const page = await web.get("/login/code");
    const resend = await web.request("POST", "/login/email/resend", { form: { _csrf: csrfFrom(page.body) } });
    expect(resend.statusCode).toBe(409);
    expect(t.mail.sent.length).toBe(sentBefore);
    expect((await web.get("/api/v1/session")).statusCode).toBe(401);
  });

  it("a link sent before the auth app was turned on no longer signs in", async () => {
    const member = await seedMember(t);
    const early = new Browser(t.app);
    await early.signInWithPassword(member.email, member.password);
    const link = t.mail.lastLink(member.email);
    await enableAuthApp(t, member);
    const opened = await early.get(link);
    expect(opened.statusCode).toBe(400);
    expect(opened.body).toContain("now uses an authenticator app");
    expect((await early.get("/api/v1/session")).statusCode).toBe(401);
  });
});
