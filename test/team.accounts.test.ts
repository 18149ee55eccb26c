import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDialect } from "./helpers/dialects.js";
import { addMembership, Browser, csrfFrom, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { enableAuthApp, STEP_SECONDS, totpCode } from "./helpers/auth-app.js";
import { newId } from "../src/auth/tokens.js";
import type { Role, SignInMethod } from "../src/db/schema.js";

describeEachDialect("several accounts per person", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  async function join(userId: string, accountId: string, role: Role = "member", method: SignInMethod = "password"): Promise<void> {
    await addMembership(t, { userId, accountId, role, signInMethod: method });
  }

  /** A person who is admin of "Alpha …" and member of "Bravo …". */
  async function person() {
    const tag = newId().slice(0, 6);
    const alphaAdmin = await seedMember(t, { role: "admin", accountName: `Alpha ${tag}`, name: "Pat Person" });
    const bravo = await seedMember(t, { role: "admin", accountName: `Bravo ${tag}` });
    await join(alphaAdmin.userId, bravo.accountId, "member");
    return {
      me: alphaAdmin,
      alpha: { id: alphaAdmin.accountId, name: `Alpha ${tag}` },
      bravo: { id: bravo.accountId, name: `Bravo ${tag}` },
    };
  }

  it("after the email link a person with two accounts lands on the picker, which lists both", async () => {
    const { me, alpha, bravo } = await person();
    const browser = new Browser(t.app);
    await browser.signInWithPassword(me.email, me.password);
    const linked = await browser.get(t.mail.lastLink(me.email));
    expect(linked.statusCode).toBe(303);
    expect(linked.headers.location).toBe("/accounts");
    const picker = await browser.get("/accounts");
    expect(picker.statusCode).toBe(200);
    expect(picker.body).toContain(alpha.name);
    expect(picker.body).toContain(bravo.name);
    expect(picker.body).toContain('action="/accounts/switch"');
    expect(picker.body).toContain(`value="${bravo.id}"`);
    const list = (await browser.get("/api/v1/accounts")).json().accounts;
    expect(list).toHaveLength(2);
    expect(list).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ id: alpha.id, name: alpha.name, role: "admin" }),
        expect.objectContaining({ id: bravo.id, name: bravo.name, role: "member" }),
      ]),
    );
    expect(list.filter((a: { current: boolean }) => a.current)).toHaveLength(1);
  });

  it("a person with one account goes straight to the start page", async () => {
    const single = await seedMember(t);
    const browser = new Browser(t.app);
    await browser.signInWithPassword(single.email, single.password);
    expect((await browser.get(t.mail.lastLink(single.email))).headers.location).toBe("/");
  });

  it("switching by form and by API moves the session; /api/v1/session reports the account and the role there", async () => {
    const { me, alpha, bravo } = await person();
    const browser = await signedInBrowser(t, me);
    const viaForm = await browser.submit("/accounts", "/accounts/switch", { accountId: bravo.id });
    expect(viaForm.statusCode).toBe(303);
    expect(viaForm.headers.location).toBe("/");
    let session = (await browser.get("/api/v1/session")).json();
    expect(session.account).toEqual({ id: bravo.id, name: bravo.name });
    expect(session.role).toBe("member");
    // The role is the account's: no admin powers in Bravo.
    expect((await browser.get("/api/v1/team/invitations")).statusCode).toBe(403);
    expect((await browser.get("/settings/security")).statusCode).toBe(403);
    expect((await browser.get("/api/v1/verify")).headers["x-latchkey-account-id"]).toBe(bravo.id);
    expect((await browser.get("/")).body).toContain(bravo.name);

    const viaApi = await browser.request("POST", "/api/v1/session/account", { json: { accountId: alpha.id } });
    expect(viaApi.statusCode).toBe(200);
    expect(viaApi.json()).toEqual({ ok: true, accountId: alpha.id });
    session = (await browser.get("/api/v1/session")).json();
    expect(session.account).toEqual({ id: alpha.id, name: alpha.name });
    expect(session.role).toBe("admin");
    expect((await browser.get("/api/v1/team/invitations")).statusCode).toBe(200);
    const current = (await browser.get("/api/v1/accounts")).json().accounts.find((a: { current: boolean }) => a.current);
    expect(current.id).toBe(alpha.id);
    // Switching is audited in the account switched to.
    const events = (await browser.get("/api/v1/audit?event=session.account_switched")).json().events;
    expect(events.length).toBeGreaterThanOrEqual(1);
    expect(events[0]).toMatchObject({ user: { id: me.userId }, detail: { from: bravo.id } });
  });

  it("switching to an account one is not a member of is 404 member_not_found, by API and form; the session stays where it was", async () => {
    const { me, alpha } = await person();
    const stranger = await seedMember(t, { accountName: "Not Yours" });
    const browser = await signedInBrowser(t, me);
    await browser.request("POST", "/api/v1/session/account", { json: { accountId: alpha.id } });
    for (const accountId of [stranger.accountId, newId()]) {
      const refused = await browser.request("POST", "/api/v1/session/account", { json: { accountId } });
      expect(refused.statusCode).toBe(404);
      expect(refused.json()).toEqual({ error: "member_not_found", message: "You are not a member of that account." });
      const form = await browser.submit("/accounts", "/accounts/switch", { accountId });
      expect(form.statusCode).toBe(404);
      expect(form.body).toContain("You are not a member of that account.");
    }
    expect((await browser.get("/api/v1/session")).json().account.id).toBe(alpha.id);
    const sessions = await t.ctx.db.selectFrom("sessions").select("account_id").where("user_id", "=", me.userId).execute();
    expect(sessions.every((s) => s.account_id !== stranger.accountId)).toBe(true);
    // A malformed id is a 400 naming the field.
    const malformed = await browser.request("POST", "/api/v1/session/account", { json: { accountId: "../admin" } });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().message).toContain('"accountId"');
    expect((await browser.request("POST", "/api/v1/session/account", { json: { accountId: alpha.id, role: "admin" } })).statusCode).toBe(
      400,
    );
  });

  it("an SSO membership is not reachable from a password session: not listed, not switchable", async () => {
    const { me, alpha } = await person();
    const ssoAccount = await seedMember(t, { accountName: "Uses SSO" });
    await join(me.userId, ssoAccount.accountId, "admin", "sso");
    const browser = await signedInBrowser(t, me);
    const ids = (await browser.get("/api/v1/accounts")).json().accounts.map((a: { id: string }) => a.id);
    expect(ids).not.toContain(ssoAccount.accountId);
    expect(ids).toContain(alpha.id);
    const refused = await browser.request("POST", "/api/v1/session/account", { json: { accountId: ssoAccount.accountId } });
    expect(refused.statusCode).toBe(404);
    expect(refused.json().error).toBe("member_not_found");
  });

  it("the next sign-in starts in the account used last", async () => {
    const { me, bravo } = await person();
    const first = await signedInBrowser(t, me);
    t.clock.advanceSeconds(5);
    expect((await first.request("POST", "/api/v1/session/account", { json: { accountId: bravo.id } })).statusCode).toBe(200);
    t.clock.advanceSeconds(5);
    const second = await signedInBrowser(t, me);
    expect((await second.get("/api/v1/session")).json().account.id).toBe(bravo.id);
  });

  it("an auth-app user with two accounts also lands on the picker after the code", async () => {
    const { me } = await person();
    const { secret } = await enableAuthApp(t, me);
    t.clock.advanceSeconds(STEP_SECONDS);
    const browser = new Browser(t.app);
    const password = await browser.signInWithPassword(me.email, me.password);
    expect(password.headers.location).toBe("/login/code");
    const page = await browser.get("/login/code");
    const code = await browser.request("POST", "/login/code", { form: { _csrf: csrfFrom(page.body), code: totpCode(t, secret) } });
    expect(code.statusCode).toBe(303);
    expect(code.headers.location).toBe("/accounts");
  });

  it("switching needs a session", async () => {
    const { alpha } = await person();
    const anonymous = new Browser(t.app);
    const api = await anonymous.request("POST", "/api/v1/session/account", { json: { accountId: alpha.id } });
    expect(api.statusCode).toBe(401);
    expect((await anonymous.get("/api/v1/accounts")).statusCode).toBe(401);
    const page = await anonymous.get("/accounts");
    expect(page.statusCode).toBe(303);
    expect(page.headers.location).toBe("/login");
  });
});
