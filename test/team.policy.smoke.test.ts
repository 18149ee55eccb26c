import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDialect } from "./helpers/dialects.js";
import { csrfFrom, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";

describeEachDialect("require auth app policy", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  it("an admin without the auth app cannot require it; with it, members already signed in are sent to setup", async () => {
    const admin = await seedMember(t, { role: "admin" });
    const member = await seedMember(t, { accountId: admin.accountId });
    const adminBrowser = await signedInBrowser(t, admin);
    const memberBrowser = await signedInBrowser(t, member);

    const security = await adminBrowser.get("/settings/security");
    expect(security.statusCode).toBe(200);
    expect(security.body).toContain("set up the auth app on your own login first");
    const refused = await adminBrowser.request("PUT", "/api/v1/policy", { json: { policy: "auth_app_required" } });
    expect(refused.statusCode).toBe(409);
    expect(refused.json().error).toBe("policy_requires_auth_app");
    const formRefused = await adminBrowser.request("POST", "/settings/security/policy", {
      form: { _csrf: csrfFrom(security.body), policy: "auth_app_required" },
    });
    expect(formRefused.statusCode).toBe(409);

    await t.ctx.db.updateTable("users").set({ two_factor_method: "auth_app" }).where("id", "=", admin.userId).execute();
    const on = await adminBrowser.request("POST", "/settings/security/policy", {
      form: { _csrf: csrfFrom(security.body), policy: "auth_app_required" },
    });
    expect(on.statusCode).toBe(303);
    expect(t.mail.last(member.email)?.subject).toContain("requires an authenticator app");

    const home = await memberBrowser.get("/");
    expect(home.statusCode).toBe(303);
    expect(home.headers.location).toBe("/settings/two-factor");
    const verify = await memberBrowser.get("/api/v1/verify");
    expect(verify.statusCode).toBe(403);
    expect(verify.json().error).toBe("two_factor_setup_required");
    expect((await memberBrowser.get("/settings/two-factor")).statusCode).toBe(200);
    expect((await memberBrowser.get("/api/v1/session")).json().twoFactor.setupRequired).toBe(true);
    expect((await memberBrowser.get("/settings/team")).statusCode).toBe(303);
  });

  it("a non-admin gets 403 on admin actions and the last admin cannot be removed", async () => {
    const admin = await seedMember(t, { role: "admin" });
    const member = await seedMember(t, { accountId: admin.accountId });
    const memberBrowser = await signedInBrowser(t, member);
    const invite = await memberBrowser.request("POST", "/api/v1/team/invitations", { json: { email: "x@example.com", role: "member" } });
    expect(invite.statusCode).toBe(403);
    expect(invite.json().error).toBe("forbidden");
    const adminBrowser = await signedInBrowser(t, admin);
    const last = await adminBrowser.request("DELETE", `/api/v1/team/members/${admin.userId}`);
    expect(last.statusCode).toBe(409);
    expect(last.json().error).toBe("last_admin");
    const removed = await adminBrowser.request("DELETE", `/api/v1/team/members/${member.userId}`);
    expect(removed.statusCode).toBe(200);
    expect(removed.json().loginDeleted).toBe(true);
    expect((await memberBrowser.get("/api/v1/session")).statusCode).toBe(401);
    const audit = await adminBrowser.get("/api/v1/audit?event=member.");
    expect(audit.json().events.map((e: { type: string }) => e.type)).toContain("member.removed");
  });
});
