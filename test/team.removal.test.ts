import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDialect } from "./helpers/dialects.js";
import { addMembership, Browser, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { enableAuthApp, passwordStep, submitCode, submitRecoveryCode, totpCode } from "./helpers/auth-app.js";
import { createInvitation } from "../src/team/invitations.js";

const NEW_PASSWORD = "a brand new and unusual passphrase";

describeEachDialect("removing members", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  async function team() {
    const admin = await seedMember(t, { role: "admin", name: "Ada Admin", accountName: "Acme" });
    const member = await seedMember(t, { accountId: admin.accountId, name: "Max Member" });
    return { admin, member, adminBrowser: await signedInBrowser(t, admin) };
  }

  async function apiLogin(email: string, password: string) {
    return new Browser(t.app).request("POST", "/api/v1/login", { json: { email, password } });
  }

  async function rowsOf(userId: string) {
    const [users, memberships, sessions, codes, setups, challenges] = await Promise.all([
      t.ctx.db.selectFrom("users").select(["id", "password_hash", "totp_secret_sealed"]).where("id", "=", userId).execute(),
      t.ctx.db.selectFrom("memberships").select("account_id").where("user_id", "=", userId).execute(),
      t.ctx.db.selectFrom("sessions").select("account_id").where("user_id", "=", userId).execute(),
      t.ctx.db.selectFrom("recovery_codes").select("id").where("user_id", "=", userId).execute(),
      t.ctx.db.selectFrom("totp_setups").select("user_id").where("user_id", "=", userId).execute(),
      t.ctx.db.selectFrom("challenges").select("id").where("user_id", "=", userId).execute(),
    ]);
    return { users, memberships, sessions, codes, setups, challenges };
  }

  it("revokes every session of the member for the account at once: next API request 401, next page to /login", async () => {
    const { admin, member, adminBrowser } = await team();
    const api = await signedInBrowser(t, member);
    const web = await signedInBrowser(t, member);
    expect((await api.get("/api/v1/session")).statusCode).toBe(200);
    expect((await web.get("/")).statusCode).toBe(200);

    const removed = await adminBrowser.request("DELETE", `/api/v1/team/members/${member.userId}`);
    expect(removed.statusCode).toBe(200);
    expect(removed.json()).toEqual({ ok: true, loginDeleted: true });

    const session = await api.get("/api/v1/session");
    expect(session.statusCode).toBe(401);
    expect(session.json().error).toBe("unauthenticated");
    expect((await api.get("/api/v1/verify")).statusCode).toBe(401);
    const page = await web.get("/settings/team");
    expect(page.statusCode).toBe(303);
    expect(page.headers.location).toBe("/login");
    expect((await rowsOf(member.userId)).sessions).toEqual([]);
    // The admin is untouched.
    expect((await adminBrowser.get("/api/v1/session")).json().account.id).toBe(admin.accountId);
    // The person is told.
    const mail = t.mail.last(member.email);
    expect(mail?.subject).toBe("You were removed from Acme");
    expect(mail?.text).toContain("your login (password, authenticator app and recovery codes) was deleted");
  });

  it("by form: the page says their login is deleted, then removal signs them out and shows a notice", async () => {
    const { member, adminBrowser } = await team();
    const memberBrowser = await signedInBrowser(t, member);
    const page = await adminBrowser.get(`/settings/team/members/${member.userId}/remove`);
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain(member.email);
    expect(page.body).toContain("This is their only team account");
    expect(page.body).toContain("is deleted");
    const removed = await adminBrowser.submit(
      `/settings/team/members/${member.userId}/remove`,
      `/settings/team/members/${member.userId}/remove`,
      {},
    );
    expect(removed.statusCode).toBe(303);
    expect(removed.headers.location).toBe("/settings/team?notice=removed");
    const after = await adminBrowser.get("/settings/team?notice=removed");
    expect(after.body).toContain("Member removed");
    expect(after.body).not.toContain(member.email);
    const next = await memberBrowser.get("/");
    expect(next.statusCode).toBe(303);
    expect(next.headers.location).toBe("/login");
    expect((await memberBrowser.get("/api/v1/session")).statusCode).toBe(401);
    expect(t.mail.last(member.email)?.subject).toContain("You were removed");
  });

  it("remove and re-add a single-account member: old password, auth app and recovery codes are gone; the new invitation gives a new password and the email link", async () => {
    const { admin, member, adminBrowser } = await team();
    const app = await enableAuthApp(t, member);
    const before = await rowsOf(member.userId);
    expect(before.codes).toHaveLength(10);
    expect(before.users[0]?.totp_secret_sealed).not.toBeNull();
    // A sign-in half done when the removal happens.
    t.clock.advanceSeconds(30);
    const halfway = await passwordStep(t, member);

    const removed = await adminBrowser.request("DELETE", `/api/v1/team/members/${member.userId}`);
    expect(removed.json()).toEqual({ ok: true, loginDeleted: true });
    expect((await app.browser.get("/api/v1/session")).statusCode).toBe(401);

    const after = await rowsOf(member.userId);
    expect(after).toEqual({ users: [], memberships: [], sessions: [], codes: [], setups: [], challenges: [] });
    const stale = await apiLogin(member.email, member.password);
    expect(stale.statusCode).toBe(401);
    expect(stale.json().error).toBe("invalid_credentials");
    // Neither the app nor a recovery code finishes the sign-in that was under way.
    t.clock.advanceSeconds(30);
    expect((await submitCode(halfway, totpCode(t, app.secret))).statusCode).toBeGreaterThanOrEqual(400);
    expect((await submitRecoveryCode(halfway, app.codes[0])).statusCode).toBeGreaterThanOrEqual(400);

    // Re-added by a new invitation.
    const invited = await adminBrowser.request("POST", "/api/v1/team/invitations", { json: { email: member.email, role: "member" } });
    expect(invited.statusCode).toBe(201);
    const path = new URL(t.mail.lastLink(member.email)).pathname;
    const form = await new Browser(t.app).get(path);
    expect(form.body).toContain("Password");
    const accepted = await new Browser(t.app).submit(path, path, { name: "Max Again", password: NEW_PASSWORD });
    expect(accepted.statusCode).toBe(303);
    expect(accepted.headers.location).toBe("/login?notice=password_set");

    expect((await apiLogin(member.email, member.password)).statusCode).toBe(401);
    const fresh = await apiLogin(member.email, NEW_PASSWORD);
    expect(fresh.statusCode).toBe(200);
    expect(fresh.json().next).toBe("email_link");
    const browser = await signedInBrowser(t, { email: member.email, password: NEW_PASSWORD });
    const session = (await browser.get("/api/v1/session")).json();
    expect(session).toMatchObject({
      user: { email: member.email, name: "Max Again" },
      account: { id: admin.accountId },
      role: "member",
      twoFactor: { method: "email_link" },
    });
    expect(session.user.id).not.toBe(member.userId);
    const user = await t.ctx.db
      .selectFrom("users")
      .select(["two_factor_method", "totp_secret_sealed", "recovery_batch_id"])
      .where("id", "=", session.user.id)
      .executeTakeFirstOrThrow();
    expect(user).toEqual({ two_factor_method: "email_link", totp_secret_sealed: null, recovery_batch_id: null });
    expect(await t.ctx.db.selectFrom("recovery_codes").select("id").where("user_id", "=", session.user.id).execute()).toEqual([]);
  });

  it("a member of two accounts keeps their login: the page says so, they still sign in to the other account, whose session stays", async () => {
    const { admin, member, adminBrowser } = await team();
    const other = await seedMember(t, { role: "admin", accountName: "Beta" });
    await addMembership(t, { userId: member.userId, accountId: other.accountId });
    // One browser on Acme, one switched to Beta.
    const onAcme = await signedInBrowser(t, member);
    expect((await onAcme.request("POST", "/api/v1/session/account", { json: { accountId: admin.accountId } })).statusCode).toBe(200);
    const onBeta = await signedInBrowser(t, member);
    expect((await onBeta.request("POST", "/api/v1/session/account", { json: { accountId: other.accountId } })).statusCode).toBe(200);
    const hashBefore = (await rowsOf(member.userId)).users[0]?.password_hash;

    const page = await adminBrowser.get(`/settings/team/members/${member.userId}/remove`);
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain("They belong to other team accounts too");
    expect(page.body).toContain("their login (password and two-factor authentication) stays");
    const removed = await adminBrowser.submit(
      `/settings/team/members/${member.userId}/remove`,
      `/settings/team/members/${member.userId}/remove`,
      {},
    );
    expect(removed.statusCode).toBe(303);

    const rows = await rowsOf(member.userId);
    expect(rows.users).toHaveLength(1);
    expect(rows.users[0]?.password_hash).toBe(hashBefore);
    expect(rows.memberships).toEqual([{ account_id: other.accountId }]);
    expect(rows.sessions.map((s) => s.account_id)).toEqual([other.accountId]);
    expect((await onAcme.get("/api/v1/session")).statusCode).toBe(401);
    const beta = await onBeta.get("/api/v1/session");
    expect(beta.statusCode).toBe(200);
    expect(beta.json().account.id).toBe(other.accountId);
    expect(t.mail.last(member.email)?.text).toContain("Your login stays, for your other team accounts.");

    // The same password still signs in, now straight into the remaining account.
    const again = await signedInBrowser(t, member);
    expect((await again.get("/api/v1/session")).json().account.id).toBe(other.accountId);
    const accounts = (await again.get("/api/v1/accounts")).json().accounts;
    expect(accounts.map((a: { id: string }) => a.id)).toEqual([other.accountId]);
    // And cannot switch back into the account that removed them.
    const back = await again.request("POST", "/api/v1/session/account", { json: { accountId: admin.accountId } });
    expect(back.statusCode).toBe(404);
    expect(back.json().error).toBe("member_not_found");
  });

  it("revokes the open invitations of that email to the account", async () => {
    const { admin, member, adminBrowser } = await team();
    const pending = await createInvitation(t.ctx, {
      accountId: admin.accountId,
      email: member.email,
      role: "admin",
      invitedByUserId: admin.userId,
    });
    if (!pending.ok) throw new Error(pending.message);
    expect((await new Browser(t.app).get(new URL(pending.value.url).pathname)).statusCode).toBe(200);
    expect((await adminBrowser.request("DELETE", `/api/v1/team/members/${member.userId}`)).statusCode).toBe(200);
    const row = await t.ctx.db
      .selectFrom("invitations")
      .select(["revoked_at", "accepted_at"])
      .where("id", "=", pending.value.invitationId)
      .executeTakeFirstOrThrow();
    expect(row.revoked_at).not.toBeNull();
    expect(row.accepted_at).toBeNull();
    expect((await new Browser(t.app).get(new URL(pending.value.url).pathname)).statusCode).toBe(404);
  });

  it("an admin may remove another admin, or themselves when another admin remains (then they are signed out)", async () => {
    const { admin, adminBrowser } = await team();
    const second = await seedMember(t, { accountId: admin.accountId, role: "admin" });
    const secondBrowser = await signedInBrowser(t, second);
    const self = await adminBrowser.submit(
      `/settings/team/members/${admin.userId}/remove`,
      `/settings/team/members/${admin.userId}/remove`,
      {},
    );
    expect(self.statusCode).toBe(303);
    expect(self.headers.location).toBe("/login");
    expect((await adminBrowser.get("/api/v1/session")).statusCode).toBe(401);
    // Now the second admin is the last one.
    const last = await secondBrowser.request("DELETE", `/api/v1/team/members/${second.userId}`);
    expect(last.statusCode).toBe(409);
    expect(last.json().error).toBe("last_admin");
  });

  it("removing a member of another account is a 404 and touches nobody", async () => {
    const { adminBrowser } = await team();
    const { member: stranger } = await team();
    const strangerBrowser = await signedInBrowser(t, stranger);
    const response = await adminBrowser.request("DELETE", `/api/v1/team/members/${stranger.userId}`);
    expect(response.statusCode).toBe(404);
    expect(response.json().error).toBe("member_not_found");
    expect((await adminBrowser.get(`/settings/team/members/${stranger.userId}/remove`)).statusCode).toBe(404);
    expect((await strangerBrowser.get("/api/v1/session")).statusCode).toBe(200);
    expect((await rowsOf(stranger.userId)).memberships).toHaveLength(1);
  });
});
