import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeEachDialect } from "./helpers/dialects.js";
import { Browser, csrfFrom, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { newId } from "../src/auth/tokens.js";

const NEW_PASSWORD = "a long and unusual passphrase";

describeEachDialect("team members and invitations", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  const freshEmail = (prefix = "invitee"): string => `${prefix}-${newId().slice(0, 8)}@example.com`;

  /** An account with an admin and a member, both signed in. */
  async function team() {
    const admin = await seedMember(t, { role: "admin", name: "Ada Admin" });
    const member = await seedMember(t, { accountId: admin.accountId, name: "Max Member" });
    return { admin, member, adminBrowser: await signedInBrowser(t, admin), memberBrowser: await signedInBrowser(t, member) };
  }

  /** Opens an invitation link in a new browser and sets name and password. */
  async function accept(
    link: string,
    password = NEW_PASSWORD,
    name = "New Person",
  ): Promise<{ status: number; location: string | undefined }> {
    const path = new URL(link).pathname;
    const response = await new Browser(t.app).submit(path, path, { name, password });
    return { status: response.statusCode, location: response.headers.location as string | undefined };
  }

  async function snapshot(accountId: string) {
    const [memberships, invitations, account, users] = await Promise.all([
      t.ctx.db.selectFrom("memberships").select(["user_id", "role"]).where("account_id", "=", accountId).orderBy("user_id").execute(),
      t.ctx.db
        .selectFrom("invitations")
        .select(["id", "email", "role", "accepted_at", "revoked_at", "token_hash"])
        .where("account_id", "=", accountId)
        .orderBy("id")
        .execute(),
      t.ctx.db.selectFrom("accounts").select(["two_factor_policy", "name"]).where("id", "=", accountId).executeTakeFirst(),
      t.ctx.db.selectFrom("users").select(["id", "email", "password_hash"]).orderBy("id").execute(),
    ]);
    return { memberships, invitations, account, users };
  }

  describe("non-admins", () => {
    it("get 403 forbidden on every admin API route, and nothing changes", async () => {
      const { admin, memberBrowser, adminBrowser } = await team();
      const other = await seedMember(t, { accountId: admin.accountId, role: "admin" });
      const created = await adminBrowser.request("POST", "/api/v1/team/invitations", { json: { email: freshEmail(), role: "member" } });
      expect(created.statusCode).toBe(201);
      const invitationId = created.json().id as string;
      const before = await snapshot(admin.accountId);
      const mailsBefore = t.mail.sent.length;

      const calls: Array<[Parameters<Browser["request"]>[0], string, unknown?]> = [
        ["GET", "/api/v1/team/invitations"],
        ["POST", "/api/v1/team/invitations", { email: freshEmail(), role: "member" }],
        ["POST", "/api/v1/team/invitations", { email: freshEmail(), role: "admin" }],
        ["POST", `/api/v1/team/invitations/${invitationId}/resend`],
        ["DELETE", `/api/v1/team/invitations/${invitationId}`],
        ["PATCH", `/api/v1/team/members/${other.userId}`, { role: "member" }],
        ["PATCH", `/api/v1/team/members/${admin.userId}`, { role: "member" }],
        ["DELETE", `/api/v1/team/members/${other.userId}`],
        ["DELETE", `/api/v1/team/members/${admin.userId}`],
        ["GET", "/api/v1/policy"],
        ["PUT", "/api/v1/policy", { policy: "auth_app_required" }],
        ["PUT", "/api/v1/policy", { policy: "email_link" }],
        ["GET", "/api/v1/audit"],
        ["GET", "/api/v1/audit?event=sign_in."],
      ];
      for (const [method, url, json] of calls) {
        const response = await memberBrowser.request(method, url, json === undefined ? {} : { json });
        expect(response.statusCode, `${method} ${url}`).toBe(403);
        expect(response.json().error, `${method} ${url}`).toBe("forbidden");
        expect(response.json().message).toMatch(/Account Admin/);
      }
      expect(await snapshot(admin.accountId)).toEqual(before);
      expect(t.mail.sent.length).toBe(mailsBefore);
      // Still signed in and a member: a refusal is not a sign-out.
      expect((await memberBrowser.get("/api/v1/session")).json().role).toBe("member");
    });

    it("get 403 on every admin page and form, with the CSRF token in order, and nothing changes", async () => {
      const { admin, memberBrowser, adminBrowser } = await team();
      const other = await seedMember(t, { accountId: admin.accountId, role: "admin" });
      const invitationId = (
        await adminBrowser.request("POST", "/api/v1/team/invitations", { json: { email: freshEmail(), role: "member" } })
      ).json().id as string;
      const before = await snapshot(admin.accountId);
      const csrf = csrfFrom((await memberBrowser.get("/settings/team")).body);

      for (const url of [
        "/settings/security",
        "/settings/audit",
        `/settings/team/members/${other.userId}/remove`,
        `/settings/team/members/${admin.userId}/remove`,
      ]) {
        const page = await memberBrowser.get(url);
        expect(page.statusCode, url).toBe(403);
        expect(page.headers["content-type"]).toContain("text/html");
        expect(page.body).toContain("Only Account Admins");
      }
      const forms: Array<[string, Record<string, string>]> = [
        ["/settings/team/invitations", { email: freshEmail(), role: "member" }],
        [`/settings/team/invitations/${invitationId}/resend`, {}],
        [`/settings/team/invitations/${invitationId}/revoke`, {}],
        [`/settings/team/members/${other.userId}/role`, { role: "member" }],
        [`/settings/team/members/${admin.userId}/role`, { role: "member" }],
        [`/settings/team/members/${other.userId}/remove`, {}],
        ["/settings/security/policy", { policy: "auth_app_required" }],
        ["/settings/security/policy", { policy: "email_link" }],
      ];
      for (const [url, form] of forms) {
        const response = await memberBrowser.request("POST", url, { form: { _csrf: csrf, ...form } });
        expect(response.statusCode, url).toBe(403);
        expect(response.body).toContain("Only Account Admins");
      }
      expect(await snapshot(admin.accountId)).toEqual(before);
    });

    it("see the Team Members list read-only: methods and roles, but no invite form, no role control, no Remove link", async () => {
      const { admin, member, memberBrowser, adminBrowser } = await team();
      await adminBrowser.request("POST", "/api/v1/team/invitations", { json: { email: freshEmail(), role: "member" } });
      const page = await memberBrowser.get("/settings/team");
      expect(page.statusCode).toBe(200);
      expect(page.body).toContain(admin.email);
      expect(page.body).toContain(member.email);
      expect(page.body).toContain("Email link");
      expect(page.body).not.toContain("Send invitation");
      expect(page.body).not.toContain('action="/settings/team/invitations"');
      expect(page.body).not.toContain("Change role");
      expect(page.body).not.toMatch(/\/remove"/);
      expect(page.body).not.toContain("/resend");
      expect(page.body).not.toContain(">Security<");
      expect(page.body).not.toContain(">Audit log<");
      // The admin sees all of them on the same account.
      const adminPage = await adminBrowser.get("/settings/team");
      expect(adminPage.body).toContain("Send invitation");
      expect(adminPage.body).toContain(`/settings/team/members/${member.userId}/remove`);
      expect(adminPage.body).toContain("Change role");
      // The list API is for every member; it shows each one's role and method.
      const list = await memberBrowser.get("/api/v1/team/members");
      expect(list.statusCode).toBe(200);
      expect(list.json().members).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ id: admin.userId, email: admin.email, role: "admin", twoFactor: { method: "email_link" } }),
          expect.objectContaining({ id: member.userId, email: member.email, role: "member", twoFactor: { method: "email_link" } }),
        ]),
      );
    });

    it("get 401 (API) and a redirect to /login (pages) when not signed in at all", async () => {
      const { admin } = await team();
      const anonymous = new Browser(t.app);
      for (const [method, url] of [
        ["GET", "/api/v1/team/members"],
        ["GET", "/api/v1/team/invitations"],
        ["POST", "/api/v1/team/invitations"],
        ["DELETE", `/api/v1/team/members/${admin.userId}`],
        ["PUT", "/api/v1/policy"],
        ["GET", "/api/v1/audit"],
      ] as const) {
        const response = await anonymous.request(method, url, method === "GET" || method === "DELETE" ? {} : { json: {} });
        expect(response.statusCode, `${method} ${url}`).toBe(401);
        expect(response.json().error).toBe("unauthenticated");
      }
      for (const url of ["/settings/team", "/settings/security", "/settings/audit", `/settings/team/members/${admin.userId}/remove`]) {
        const page = await anonymous.get(url);
        expect(page.statusCode, url).toBe(303);
        expect(page.headers.location).toBe("/login");
      }
    });
  });

  describe("invitations", () => {
    it("by API: the email carries a working link and the role is applied on acceptance", async () => {
      const { admin, adminBrowser } = await team();
      const email = freshEmail();
      const created = await adminBrowser.request("POST", "/api/v1/team/invitations", { json: { email, role: "admin" } });
      expect(created.statusCode).toBe(201);
      expect(created.json()).toMatchObject({ email, emailed: true });
      const message = t.mail.last(email);
      expect(message?.subject).toContain("invited");
      const link = t.mail.lastLink(email);
      expect(link.startsWith(`${t.config.publicUrl.origin}/invite/`)).toBe(true);

      const pending = await adminBrowser.get("/api/v1/team/invitations");
      expect(pending.json().invitations).toEqual([
        expect.objectContaining({ id: created.json().id, email, role: "admin", expired: false }),
      ]);

      expect(await accept(link)).toEqual({ status: 303, location: "/login?notice=password_set" });
      const user = await t.ctx.db
        .selectFrom("users")
        .select(["id", "two_factor_method"])
        .where("email", "=", email)
        .executeTakeFirstOrThrow();
      const membership = await t.ctx.db
        .selectFrom("memberships")
        .select(["role", "sign_in_method"])
        .where("user_id", "=", user.id)
        .where("account_id", "=", admin.accountId)
        .executeTakeFirstOrThrow();
      expect(membership).toEqual({ role: "admin", sign_in_method: "password" });
      const joined = await signedInBrowser(t, { email, password: NEW_PASSWORD });
      expect((await joined.get("/api/v1/session")).json()).toMatchObject({
        account: { id: admin.accountId },
        role: "admin",
        twoFactor: { method: "email_link" },
      });
      // Accepted invitations leave the pending list; the link is single use.
      expect((await adminBrowser.get("/api/v1/team/invitations")).json().invitations).toEqual([]);
      expect((await new Browser(t.app).get(new URL(link).pathname)).statusCode).toBe(410);
    });

    it("by form: the Team Members page lists it as Invited, the link works and the role is a member's", async () => {
      const { admin, adminBrowser } = await team();
      const email = freshEmail();
      const sent = await adminBrowser.submit("/settings/team", "/settings/team/invitations", { email, role: "member" });
      expect(sent.statusCode).toBe(303);
      expect(sent.headers.location).toBe("/settings/team?notice=invited");
      const page = await adminBrowser.get(sent.headers.location as string);
      expect(page.body).toContain("Invitation sent.");
      expect(page.body).toContain(email);
      expect(page.body).toContain("Invited");
      expect(page.body).toMatch(/\/settings\/team\/invitations\/[0-9a-f]{32}\/resend/);

      expect((await accept(t.mail.lastLink(email))).status).toBe(303);
      const row = await t.ctx.db
        .selectFrom("memberships")
        .innerJoin("users", "users.id", "memberships.user_id")
        .select(["memberships.role"])
        .where("users.email", "=", email)
        .where("memberships.account_id", "=", admin.accountId)
        .executeTakeFirstOrThrow();
      expect(row.role).toBe("member");
      const after = await adminBrowser.get("/settings/team");
      expect(after.body).toContain("New Person");
      expect(after.body).not.toContain("Invited<");
    });

    it("resend (API) gives a new link and voids the old one; revoke (API) voids the link", async () => {
      const { admin, adminBrowser } = await team();
      const email = freshEmail();
      const id = (await adminBrowser.request("POST", "/api/v1/team/invitations", { json: { email, role: "admin" } })).json().id as string;
      const first = t.mail.lastLink(email);
      const resent = await adminBrowser.request("POST", `/api/v1/team/invitations/${id}/resend`);
      expect(resent.statusCode).toBe(200);
      expect(resent.json()).toMatchObject({ ok: true, emailed: true });
      const second = t.mail.lastLink(email);
      expect(second).not.toBe(first);
      const old = await new Browser(t.app).get(new URL(first).pathname);
      expect([404, 410]).toContain(old.statusCode);
      expect(old.body).toContain("This invitation does not work");
      expect((await new Browser(t.app).get(new URL(second).pathname)).statusCode).toBe(200);
      // Exactly one open invitation remains, with the role kept.
      const open = (await adminBrowser.get("/api/v1/team/invitations")).json().invitations;
      expect(open).toHaveLength(1);
      expect(open[0]).toMatchObject({ email, role: "admin" });

      const revoked = await adminBrowser.request("DELETE", `/api/v1/team/invitations/${open[0].id}`);
      expect(revoked.statusCode).toBe(200);
      const dead = await new Browser(t.app).get(new URL(second).pathname);
      expect([404, 410]).toContain(dead.statusCode);
      const stranger = new Browser(t.app);
      const csrf = csrfFrom((await stranger.get("/login")).body);
      const tried = await stranger.request("POST", new URL(second).pathname, {
        form: { _csrf: csrf, name: "Late", password: NEW_PASSWORD },
      });
      expect([404, 410]).toContain(tried.statusCode);
      expect((await adminBrowser.get("/api/v1/team/invitations")).json().invitations).toEqual([]);
      expect(await t.ctx.db.selectFrom("users").select("id").where("email", "=", email).execute()).toHaveLength(0);
      expect(await t.ctx.db.selectFrom("memberships").select("id").where("account_id", "=", admin.accountId).execute()).toHaveLength(2);
      // Revoking twice is a 404: there is no open invitation left.
      expect((await adminBrowser.request("DELETE", `/api/v1/team/invitations/${open[0].id}`)).statusCode).toBe(404);
    });

    it("resend and revoke by form do the same, with a notice", async () => {
      const { adminBrowser } = await team();
      const email = freshEmail();
      await adminBrowser.submit("/settings/team", "/settings/team/invitations", { email, role: "member" });
      const first = t.mail.lastLink(email);
      const id = (await adminBrowser.get("/api/v1/team/invitations")).json().invitations[0].id as string;
      const resent = await adminBrowser.submit("/settings/team", `/settings/team/invitations/${id}/resend`, {});
      expect(resent.statusCode).toBe(303);
      expect(resent.headers.location).toBe("/settings/team?notice=resent");
      expect((await adminBrowser.get("/settings/team?notice=resent")).body).toContain("the old one no longer works");
      const second = t.mail.lastLink(email);
      expect(second).not.toBe(first);
      expect([404, 410]).toContain((await new Browser(t.app).get(new URL(first).pathname)).statusCode);

      const newId2 = (await adminBrowser.get("/api/v1/team/invitations")).json().invitations[0].id as string;
      const revoked = await adminBrowser.submit("/settings/team", `/settings/team/invitations/${newId2}/revoke`, {});
      expect(revoked.statusCode).toBe(303);
      expect(revoked.headers.location).toBe("/settings/team?notice=revoked");
      expect([404, 410]).toContain((await new Browser(t.app).get(new URL(second).pathname)).statusCode);
      expect((await adminBrowser.get("/settings/team")).body).not.toContain(email);
    });

    it("after 7 days an invitation is listed as expired and its link is 410; a resend gives a fresh 7-day link", async () => {
      const { admin, adminBrowser } = await team();
      const email = freshEmail();
      const id = (await adminBrowser.request("POST", "/api/v1/team/invitations", { json: { email, role: "member" } })).json().id as string;
      const link = t.mail.lastLink(email);
      t.clock.advanceSeconds(7 * 24 * 3600 + 1);
      const browser = await signedInBrowser(t, admin);
      const listed = (await browser.get("/api/v1/team/invitations")).json().invitations;
      expect(listed).toEqual([expect.objectContaining({ id, email, expired: true })]);
      expect((await browser.get("/settings/team")).body).toContain("Invitation expired");
      const expired = await new Browser(t.app).get(new URL(link).pathname);
      expect(expired.statusCode).toBe(410);
      expect(expired.body).toContain("expired");
      expect((await browser.request("POST", `/api/v1/team/invitations/${id}/resend`)).statusCode).toBe(200);
      const fresh = (await browser.get("/api/v1/team/invitations")).json().invitations;
      expect(fresh).toEqual([expect.objectContaining({ email, expired: false })]);
      expect((await accept(t.mail.lastLink(email))).status).toBe(303);
    });

    it("an invitation of another account cannot be resent or revoked from this one", async () => {
      const { adminBrowser } = await team();
      const { adminBrowser: otherAdmin } = await team();
      const email = freshEmail();
      const id = (await otherAdmin.request("POST", "/api/v1/team/invitations", { json: { email, role: "member" } })).json().id as string;
      expect((await adminBrowser.request("POST", `/api/v1/team/invitations/${id}/resend`)).statusCode).toBe(404);
      expect((await adminBrowser.request("DELETE", `/api/v1/team/invitations/${id}`)).statusCode).toBe(404);
      expect((await otherAdmin.get("/api/v1/team/invitations")).json().invitations).toHaveLength(1);
      expect((await adminBrowser.get("/api/v1/team/invitations")).json().invitations).toHaveLength(0);
    });

    it("a person who already has a login joins a second account with their own password", async () => {
      const { adminBrowser, admin } = await team();
      const elsewhere = await seedMember(t);
      await adminBrowser.request("POST", "/api/v1/team/invitations", { json: { email: elsewhere.email, role: "member" } });
      const path = new URL(t.mail.lastLink(elsewhere.email)).pathname;
      const joined = await new Browser(t.app).submit(path, path, { password: elsewhere.password });
      expect(joined.statusCode).toBe(303);
      expect(joined.headers.location).toBe("/login?notice=joined");
      const rows = await t.ctx.db.selectFrom("memberships").select("account_id").where("user_id", "=", elsewhere.userId).execute();
      expect(rows.map((r) => r.account_id).sort()).toEqual([admin.accountId, elsewhere.accountId].sort());
    });
  });

  describe("roles and the last admin", () => {
    it("the only admin can be neither demoted nor removed, by API or by form (409 last_admin), and stays admin", async () => {
      const { admin, adminBrowser } = await team();
      const demote = await adminBrowser.request("PATCH", `/api/v1/team/members/${admin.userId}`, { json: { role: "member" } });
      expect(demote.statusCode).toBe(409);
      expect(demote.json().error).toBe("last_admin");
      expect(demote.json().message).toContain("only Account Admin");
      const remove = await adminBrowser.request("DELETE", `/api/v1/team/members/${admin.userId}`);
      expect(remove.statusCode).toBe(409);
      expect(remove.json().error).toBe("last_admin");
      const formDemote = await adminBrowser.submit("/settings/team", `/settings/team/members/${admin.userId}/role`, { role: "member" });
      expect(formDemote.statusCode).toBe(409);
      expect(formDemote.body).toContain("only Account Admin");
      const formRemove = await adminBrowser.submit("/settings/team", `/settings/team/members/${admin.userId}/remove`, {});
      expect(formRemove.statusCode).toBe(409);
      expect(formRemove.body).toContain("only Account Admin");
      const row = await t.ctx.db.selectFrom("memberships").select("role").where("user_id", "=", admin.userId).executeTakeFirstOrThrow();
      expect(row.role).toBe("admin");
      expect((await adminBrowser.get("/api/v1/session")).statusCode).toBe(200);
      // The page offers neither control for the last admin.
      const page = (await adminBrowser.get("/settings/team")).body;
      expect(page).not.toContain(`/settings/team/members/${admin.userId}/role`);
      expect(page).not.toContain(`/settings/team/members/${admin.userId}/remove`);
    });

    it("promote by form, then with two admins one can be demoted (even oneself), but not the second one too", async () => {
      const { admin, member, adminBrowser, memberBrowser } = await team();
      const promoted = await adminBrowser.submit("/settings/team", `/settings/team/members/${member.userId}/role`, { role: "admin" });
      expect(promoted.statusCode).toBe(303);
      expect(promoted.headers.location).toBe("/settings/team?notice=role");
      // The promotion applies to the member's open session at once.
      expect((await memberBrowser.get("/api/v1/session")).json().role).toBe("admin");
      expect((await memberBrowser.get("/settings/security")).statusCode).toBe(200);

      t.clock.advanceSeconds(1);
      const self = await adminBrowser.request("PATCH", `/api/v1/team/members/${admin.userId}`, { json: { role: "member" } });
      expect(self.statusCode).toBe(200);
      expect((await adminBrowser.get("/api/v1/policy")).statusCode).toBe(403);
      const last = await memberBrowser.request("PATCH", `/api/v1/team/members/${member.userId}`, { json: { role: "member" } });
      expect(last.statusCode).toBe(409);
      expect(last.json().error).toBe("last_admin");
      const roles = await t.ctx.db
        .selectFrom("memberships")
        .select(["user_id", "role"])
        .where("account_id", "=", admin.accountId)
        .execute();
      expect(Object.fromEntries(roles.map((r) => [r.user_id, r.role]))).toEqual({ [admin.userId]: "member", [member.userId]: "admin" });
      const events = (await memberBrowser.get("/api/v1/audit?event=member.role_changed")).json().events;
      expect(events.map((e: { detail: unknown }) => e.detail)).toEqual([
        { from: "admin", to: "member" },
        { from: "member", to: "admin" },
      ]);
    });

    it("setting the role a member already has is a no-op, not an error", async () => {
      const { member, adminBrowser } = await team();
      const same = await adminBrowser.request("PATCH", `/api/v1/team/members/${member.userId}`, { json: { role: "member" } });
      expect(same.statusCode).toBe(200);
    });
  });
});
