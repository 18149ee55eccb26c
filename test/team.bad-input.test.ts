import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeEachDialect } from "./helpers/dialects.js";
import { csrfFrom, seedMember, signedInBrowser, startTestApp, type Browser, type TestApp } from "./helpers/app.js";
import { newId } from "../src/auth/tokens.js";

describeEachDialect("team bad input", (dialect) => {
  let t: TestApp;
  let admin: Awaited<ReturnType<typeof seedMember>>;
  let member: Awaited<ReturnType<typeof seedMember>>;
  let browser: Browser;
  let invitationId: string;
  beforeAll(async () => {
    t = await startTestApp(dialect);
    admin = await seedMember(t, { role: "admin", email: `admin-${newId().slice(0, 6)}@example.com` });
    member = await seedMember(t, { accountId: admin.accountId, email: `Member-${newId().slice(0, 6)}@example.com`.toLowerCase() });
    browser = await signedInBrowser(t, admin);
    const created = await browser.request("POST", "/api/v1/team/invitations", {
      json: { email: `pending-${newId().slice(0, 6)}@example.com`, role: "member" },
    });
    invitationId = created.json().id as string;
  });
  afterAll(async () => {
    await t?.close();
  });

  /** Everything a refused team request could have changed. */
  async function state() {
    const [memberships, invitations, users, account, sessions] = await Promise.all([
      t.ctx.db
        .selectFrom("memberships")
        .select(["id", "user_id", "role"])
        .where("account_id", "=", admin.accountId)
        .orderBy("id")
        .execute(),
      t.ctx.db.selectFrom("invitations").select(["id", "email", "role", "token_hash", "accepted_at", "revoked_at"]).orderBy("id").execute(),
      t.ctx.db.selectFrom("users").select(["id", "email", "password_hash"]).orderBy("id").execute(),
      t.ctx.db.selectFrom("accounts").select("two_factor_policy").where("id", "=", admin.accountId).executeTakeFirst(),
      t.ctx.db.selectFrom("sessions").select("id").orderBy("id").execute(),
    ]);
    return { memberships, invitations, users, account, sessions, mails: t.mail.sent.length };
  }

  /** Sends the request and checks: the status and code, a clear message, no 5xx, and nothing changed. */
  async function refused(
    send: () => Promise<LightMyRequestResponse>,
    status: number,
    error: string | null,
    mentions?: string | RegExp,
  ): Promise<LightMyRequestResponse> {
    const before = await state();
    const response = await send();
    expect(response.statusCode, response.body.slice(0, 300)).toBe(status);
    if (response.headers["content-type"]?.toString().includes("json")) {
      const body = response.json() as { error: string; message: string };
      if (error) expect(body.error).toBe(error);
      expect(typeof body.message).toBe("string");
      expect(body.message.length).toBeGreaterThan(5);
      if (mentions) expect(body.message).toMatch(mentions);
    } else if (mentions) {
      expect(response.body).toMatch(mentions);
    }
    expect(await state()).toEqual(before);
    return response;
  }

  const invite = (json: unknown) => () => browser.request("POST", "/api/v1/team/invitations", { json });

  it("an invalid email is 422 email_invalid, by API and by form", async () => {
    for (const email of [
      "not-an-email",
      "a@",
      "@example.com",
      "",
      " ",
      "two@at@example.com",
      `${"x".repeat(250)}@example.com`,
      "nul\u0000@example.com",
      "new\nline@example.com",
    ]) {
      await refused(invite({ email, role: "member" }), 422, "email_invalid");
    }
    const csrf = csrfFrom((await browser.get("/settings/team")).body);
    const form = await refused(
      () => browser.request("POST", "/settings/team/invitations", { form: { _csrf: csrf, email: "not-an-email", role: "member" } }),
      422,
      null,
    );
    expect(form.headers["content-type"]).toContain("text/html");
    expect(form.body).toContain('value="not-an-email"');
    expect(form.body).toMatch(/email/i);
  });

  it("inviting an existing member is 409 already_member, whatever the case of the address", async () => {
    for (const email of [member.email, member.email.toUpperCase(), ` ${member.email} `, admin.email]) {
      await refused(invite({ email, role: "member" }), 409, "already_member", /already a member/);
    }
    const csrf = csrfFrom((await browser.get("/settings/team")).body);
    const form = await refused(
      () => browser.request("POST", "/settings/team/invitations", { form: { _csrf: csrf, email: member.email, role: "admin" } }),
      409,
      null,
    );
    expect(form.body).toContain("already a member");
  });

  it('a role that does not exist is 400 invalid_request naming "role"', async () => {
    const email = `new-${newId().slice(0, 6)}@example.com`;
    for (const role of ["owner", "ADMIN", "", " admin", 1, null, ["admin"], { admin: true }]) {
      await refused(invite({ email, role }), 400, "invalid_request", /"role"/);
    }
    await refused(invite({ email }), 400, "invalid_request", /"role"/);
    await refused(
      () => browser.request("PATCH", `/api/v1/team/members/${member.userId}`, { json: { role: "owner" } }),
      400,
      "invalid_request",
      /"role"/,
    );
    await refused(() => browser.request("PATCH", `/api/v1/team/members/${member.userId}`, { json: {} }), 400, "invalid_request", /"role"/);
    const csrf = csrfFrom((await browser.get("/settings/team")).body);
    await refused(
      () => browser.request("POST", "/settings/team/invitations", { form: { _csrf: csrf, email, role: "superuser" } }),
      400,
      null,
      /role/,
    );
    await refused(
      () => browser.request("POST", `/settings/team/members/${member.userId}/role`, { form: { _csrf: csrf, role: "root" } }),
      400,
      null,
      /role/,
    );
  });

  it("an unknown member id is 404 member_not_found for change and removal, by API, form and page; never a 5xx", async () => {
    const csrf = csrfFrom((await browser.get("/settings/team")).body);
    const stranger = await seedMember(t);
    for (const id of [newId(), stranger.userId, "nope", "x".repeat(190), "%00", "%C3%A9t%C3%A9", "..%2F..%2Fetc", "'%20or%201=1--"]) {
      await refused(
        () => browser.request("PATCH", `/api/v1/team/members/${id}`, { json: { role: "admin" } }),
        404,
        "member_not_found",
        /no such member/,
      );
      await refused(() => browser.request("DELETE", `/api/v1/team/members/${id}`), 404, "member_not_found", /no such member/);
      await refused(
        () => browser.request("POST", `/settings/team/members/${id}/role`, { form: { _csrf: csrf, role: "admin" } }),
        404,
        null,
        /no such member/,
      );
      await refused(
        () => browser.request("POST", `/settings/team/members/${id}/remove`, { form: { _csrf: csrf } }),
        404,
        null,
        /no such member/,
      );
      await refused(() => browser.get(`/settings/team/members/${id}/remove`), 404, null, /no such member/);
    }
  });

  it("resending or revoking an unknown invitation is 404 invitation_not_found", async () => {
    const csrf = csrfFrom((await browser.get("/settings/team")).body);
    for (const id of [newId(), "nope", "%00", "z".repeat(190)]) {
      await refused(
        () => browser.request("POST", `/api/v1/team/invitations/${id}/resend`),
        404,
        "invitation_not_found",
        /no open invitation/,
      );
      await refused(() => browser.request("DELETE", `/api/v1/team/invitations/${id}`), 404, "invitation_not_found", /no open invitation/);
      await refused(
        () => browser.request("POST", `/settings/team/invitations/${id}/resend`, { form: { _csrf: csrf } }),
        404,
        null,
        /no open invitation/,
      );
      await refused(
        () => browser.request("POST", `/settings/team/invitations/${id}/revoke`, { form: { _csrf: csrf } }),
        404,
        null,
        /no open invitation/,
      );
    }
  });

  it("extra fields are 400 on every team API body, naming the field", async () => {
    const email = `new-${newId().slice(0, 6)}@example.com`;
    await refused(invite({ email, role: "member", isAdmin: true }), 400, "invalid_request", /isAdmin/);
    await refused(invite({ email, role: "member", accountId: newId() }), 400, "invalid_request", /accountId/);
    await refused(
      () => browser.request("PATCH", `/api/v1/team/members/${member.userId}`, { json: { role: "admin", twoFactor: "off" } }),
      400,
      "invalid_request",
      /twoFactor/,
    );
    await refused(
      () => browser.request("PUT", "/api/v1/policy", { json: { policy: "email_link", force: true } }),
      400,
      "invalid_request",
      /force/,
    );
    await refused(
      () => browser.request("POST", "/api/v1/session/account", { json: { accountId: admin.accountId, role: "admin" } }),
      400,
      "invalid_request",
      /role/,
    );
  });

  it("wrong types, missing fields and bad policies are 400 naming the field", async () => {
    await refused(invite({ email: 42, role: "member" }), 400, "invalid_request", /"email" must be a string/);
    await refused(invite({ role: "member" }), 400, "invalid_request", /"email" is required/);
    await refused(invite({ email: "x".repeat(5000), role: "member" }), 400, "invalid_request", /"email" is too long/);
    await refused(invite([{ email: "a@example.com", role: "member" }]), 400, "invalid_request");
    await refused(invite("a@example.com"), 400, "invalid_request");
    await refused(invite(null), 400, "invalid_request");
    await refused(() => browser.request("PUT", "/api/v1/policy", { json: { policy: "off" } }), 400, "invalid_request", /"policy"/);
    await refused(() => browser.request("PUT", "/api/v1/policy", { json: {} }), 400, "invalid_request", /"policy"/);
    await refused(() => browser.request("PUT", "/api/v1/policy", { json: { policy: true } }), 400, "invalid_request", /"policy"/);
    const csrf = csrfFrom((await browser.get("/settings/security")).body);
    await refused(
      () => browser.request("POST", "/settings/security/policy", { form: { _csrf: csrf, policy: "sometimes" } }),
      400,
      null,
      /policy/,
    );
    await refused(
      () => browser.request("POST", "/api/v1/session/account", { json: { accountId: 7 } }),
      400,
      "invalid_request",
      /"accountId"/,
    );
  });

  it("malformed bodies: not JSON, wrong media type, repeated form fields, oversized", async () => {
    const raw = (payload: string, type: string) => () =>
      t.app.inject({
        method: "POST",
        url: "/api/v1/team/invitations",
        headers: { cookie: browser.cookieHeader(), "content-type": type },
        payload,
      });
    await refused(raw('{"email": "a@example.com", "role": ', "application/json"), 400, "invalid_json");
    await refused(raw("email=a%40example.com&role=member", "application/x-www-form-urlencoded"), 415, "unsupported_media_type");
    await refused(raw("hello", "text/plain"), 415, "unsupported_media_type");
    await refused(
      raw(JSON.stringify({ email: `${"a".repeat(200_000)}@example.com`, role: "member" }), "application/json"),
      413,
      "payload_too_large",
    );
    const csrf = csrfFrom((await browser.get("/settings/team")).body);
    const repeated = () =>
      t.app.inject({
        method: "POST",
        url: "/settings/team/invitations",
        headers: { cookie: browser.cookieHeader(), "content-type": "application/x-www-form-urlencoded" },
        payload: `_csrf=${encodeURIComponent(csrf)}&email=a%40example.com&role=member&role=admin`,
      });
    await refused(repeated, 400, null, /role/);
  });

  it("nothing above left a trace: the account still has its two members and one pending invitation", async () => {
    const members = (await browser.get("/api/v1/team/members")).json().members;
    expect(members.map((m: { id: string }) => m.id).sort()).toEqual([admin.userId, member.userId].sort());
    const pending = (await browser.get("/api/v1/team/invitations")).json().invitations;
    expect(pending.map((i: { id: string }) => i.id)).toEqual([invitationId]);
    expect((await browser.get("/api/v1/session")).json().role).toBe("admin");
  });
});

describe("team bad input: invitation addresses with header structure", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp("sqlite");
  });
  afterAll(async () => {
    await t?.close();
  });

  it.each(["a@x.com,b@corp.com", "a@x.com;b@corp.com", '"a"@x.com', "a<b@corp.com>@x.com", "a(b)@x.com", "a@[127.0.0.1].com"])(
    "an invitation to an address with header structure (%s) is refused with 422 email_invalid and nothing is sent",
    async (email) => {
      const admin = await seedMember(t, { role: "admin" });
      const browser = await signedInBrowser(t, admin);
      const sent = t.mail.sent.length;
      const response = await browser.request("POST", "/api/v1/team/invitations", { json: { email, role: "member" } });
      expect(response.statusCode).toBe(422);
      expect(response.json().error).toBe("email_invalid");
      expect(t.mail.sent.length).toBe(sent);
    },
  );
});
