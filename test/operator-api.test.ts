import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LightMyRequestResponse } from "fastify";
import { describeEachDialect } from "./helpers/dialects.js";
import { Browser, rowCounts, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { createApiToken, revokeApiToken } from "../src/auth/api-tokens.js";
import { hashToken, newId, newToken } from "../src/auth/tokens.js";

type Method = "GET" | "POST" | "DELETE";

/**
 * The operator API (`/api/v1/admin/…`): team accounts administered with an API token sent as `Authorization: Bearer`,
 * never with a cookie.
 */
describeEachDialect("operator API", (dialect) => {
  let t: TestApp;
  let token: string;
  let tokenId: string;
  const tokenName = "provisioning";

  beforeAll(async () => {
    t = await startTestApp(dialect);
    const created = await createApiToken(t.ctx, { name: tokenName });
    if (!created.ok) throw new Error(created.message);
    token = created.value.token;
    tokenId = created.value.id;
  });
  afterAll(async () => {
    await t?.close();
  });

  function call(
    method: Method,
    url: string,
    options: { json?: unknown; headers?: Record<string, string>; payload?: string; bearer?: string | null } = {},
  ): Promise<LightMyRequestResponse> {
    const headers: Record<string, string> = {};
    const bearer = options.bearer === undefined ? token : options.bearer;
    if (bearer !== null) headers["authorization"] = `Bearer ${bearer}`;
    let payload = options.payload;
    if (options.json !== undefined) {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(options.json);
    }
    return t.app.inject({ method, url, headers: { ...headers, ...options.headers }, ...(payload !== undefined ? { payload } : {}) });
  }

  /** Every table an operator call writes, and the mail sent: all must stay the same after a refused call. */
  const snapshot = (): Promise<Record<string, number>> =>
    rowCounts(t, ["accounts", "invitations", "audit_events", "memberships", "users", "sessions"]);

  async function eventsOf(accountId: string, type: string) {
    return t.ctx.db
      .selectFrom("audit_events")
      .select(["actor_user_id", "user_id", "detail"])
      .where("account_id", "=", accountId)
      .where("type", "=", type)
      .execute();
  }

  /** An account with an admin and a member, created directly. */
  async function team(): Promise<{
    accountId: string;
    admin: Awaited<ReturnType<typeof seedMember>>;
    member: Awaited<ReturnType<typeof seedMember>>;
  }> {
    const admin = await seedMember(t, { role: "admin", name: "Ada Admin", accountName: `Team ${newId().slice(0, 6)}` });
    const member = await seedMember(t, { accountId: admin.accountId, name: "Max Member" });
    return { accountId: admin.accountId, admin, member };
  }

  describe("happy paths", () => {
    it("POST /api/v1/admin/accounts creates the account, invites its admin by email and answers 201 with the invitation", async () => {
      const response = await call("POST", "/api/v1/admin/accounts", { json: { name: "Globex", adminEmail: "Hank@Globex.example" } });
      expect(response.statusCode, response.body).toBe(201);
      const body = response.json<{
        account: { id: string; name: string };
        invitation: { url: string; expiresAt: string; emailed: boolean };
      }>();
      expect(body).toEqual({
        account: { id: expect.stringMatching(/^[0-9a-f]{32}$/), name: "Globex" },
        invitation: {
          url: expect.stringMatching(/^http:\/\/localhost:3000\/invite\/[A-Za-z0-9_-]{43}$/),
          expiresAt: new Date(t.clock.now() + t.config.limits.invitationTtlSeconds * 1000).toISOString(),
          emailed: true,
        },
      });
      // The invitation is emailed to the admin, with the same link.
      expect(t.mail.lastLink("hank@globex.example")).toBe(body.invitation.url);
      const invitation = await t.ctx.db
        .selectFrom("invitations")
        .select(["email", "role", "account_id", "accepted_at"])
        .where("token_hash", "=", hashToken(body.invitation.url.split("/").pop()!))
        .executeTakeFirstOrThrow();
      expect(invitation).toEqual({ email: "hank@globex.example", role: "admin", account_id: body.account.id, accepted_at: null });
      // The link opens the invitation page.
      const page = await new Browser(t.app).get(body.invitation.url);
      expect(page.statusCode).toBe(200);
      expect(page.body).toContain("Join Globex");
    });

    it("the audit events of an operator call name the token and no person", async () => {
      const response = await call("POST", "/api/v1/admin/accounts", { json: { name: "Initech", adminEmail: "bill@initech.example" } });
      expect(response.statusCode).toBe(201);
      const accountId = response.json<{ account: { id: string } }>().account.id;
      for (const type of ["account.created", "invitation.created"]) {
        const events = await eventsOf(accountId, type);
        expect(events, type).toHaveLength(1);
        expect(events[0]!.actor_user_id, type).toBeNull();
        expect(JSON.parse(events[0]!.detail).actor, type).toEqual({ tokenId, tokenName });
      }
    });

    it("GET /api/v1/admin/accounts lists every account a page at a time, following nextCursor to the end", async () => {
      for (let i = 0; i < 3; i++) await seedMember(t, { role: "admin", accountName: `Paged ${i}` });
      const all = (await t.ctx.db.selectFrom("accounts").select("id").execute()).map((r) => r.id);
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const query: string = cursor ? `?limit=2&cursor=${encodeURIComponent(cursor)}` : "?limit=2";
        const response = await call("GET", `/api/v1/admin/accounts${query}`);
        expect(response.statusCode, response.body).toBe(200);
        const body = response.json<{
          accounts: Array<{ id: string; name: string; createdAt: string; twoFactorPolicy: string; members: number }>;
          nextCursor: string | null;
        }>();
        expect(body.accounts.length).toBeLessThanOrEqual(2);
        for (const account of body.accounts) {
          expect(account).toEqual({
            id: expect.any(String),
            name: expect.any(String),
            createdAt: expect.any(String),
            twoFactorPolicy: "email_link",
            members: expect.any(Number),
          });
        }
        seen.push(...body.accounts.map((a) => a.id));
        cursor = body.nextCursor;
        pages++;
      } while (cursor !== null && pages < 100);
      expect(pages).toBeGreaterThan(1);
      expect(new Set(seen).size).toBe(seen.length);
      expect([...seen].sort()).toEqual([...all].sort());
    });

    it("GET /api/v1/admin/accounts/{id} shows the account, its members with their roles and 2FA methods, and open invitations", async () => {
      const { accountId, admin, member } = await team();
      const appUser = await seedMember(t, { accountId, name: "Alex App" });
      await t.ctx.db.updateTable("users").set({ two_factor_method: "auth_app" }).where("id", "=", appUser.userId).execute();
      const ssoUser = await seedMember(t, { accountId, name: "Sam Sso" });
      await t.ctx.db.updateTable("memberships").set({ sign_in_method: "sso" }).where("user_id", "=", ssoUser.userId).execute();
      expect(
        (await call("POST", `/api/v1/admin/accounts/${accountId}/invitations`, { json: { email: "new@example.com", role: "member" } }))
          .statusCode,
      ).toBe(201);

      const response = await call("GET", `/api/v1/admin/accounts/${accountId}`);
      expect(response.statusCode, response.body).toBe(200);
      const body = response.json<{
        account: { id: string; name: string; twoFactorPolicy: string; createdAt: string };
        members: Array<{ id: string; email: string; role: string; twoFactor: { method: string } }>;
        invitations: Array<{ email: string; role: string; expired: boolean }>;
      }>();
      expect(body.account).toMatchObject({ id: accountId, twoFactorPolicy: "email_link" });
      const byId = new Map(body.members.map((m) => [m.id, m]));
      expect(byId.size).toBe(4);
      expect(byId.get(admin.userId)).toMatchObject({ email: admin.email, role: "admin", twoFactor: { method: "email_link" } });
      expect(byId.get(member.userId)).toMatchObject({ role: "member", twoFactor: { method: "email_link" } });
      expect(byId.get(appUser.userId)).toMatchObject({ twoFactor: { method: "auth_app" } });
      expect(byId.get(ssoUser.userId)).toMatchObject({ twoFactor: { method: "sso" } });
      expect(body.invitations).toEqual([expect.objectContaining({ email: "new@example.com", role: "member", expired: false })]);
    });

    it("POST /api/v1/admin/accounts/{id}/invitations invites and emails; an existing member is 409 already_member", async () => {
      const { accountId, member } = await team();
      const response = await call("POST", `/api/v1/admin/accounts/${accountId}/invitations`, {
        json: { email: "Newcomer@Example.com", role: "admin" },
      });
      expect(response.statusCode, response.body).toBe(201);
      const body = response.json<{
        invitation: { id: string; email: string; role: string; url: string; expiresAt: string; emailed: boolean };
      }>();
      expect(body.invitation).toMatchObject({ email: "newcomer@example.com", role: "admin", emailed: true });
      expect(t.mail.lastLink("newcomer@example.com")).toBe(body.invitation.url);
      const row = await t.ctx.db
        .selectFrom("invitations")
        .select(["id", "account_id", "role", "created_by_user_id"])
        .where("token_hash", "=", hashToken(body.invitation.url.split("/").pop()!))
        .executeTakeFirstOrThrow();
      expect(row).toEqual({ id: body.invitation.id, account_id: accountId, role: "admin", created_by_user_id: null });
      const events = await eventsOf(accountId, "invitation.created");
      expect(events.map((e) => JSON.parse(e.detail).actor)).toEqual([{ tokenId, tokenName }]);

      const before = await snapshot();
      const again = await call("POST", `/api/v1/admin/accounts/${accountId}/invitations`, {
        json: { email: member.email, role: "member" },
      });
      expect(again.statusCode).toBe(409);
      expect(again.json()).toMatchObject({ error: "already_member" });
      expect(await snapshot()).toEqual(before);
    });

    it("DELETE /api/v1/admin/accounts/{id}/members/{userId} removes the member and signs them out, as an admin's removal does", async () => {
      const { accountId, member } = await team();
      const browser = await signedInBrowser(t, member);
      expect((await browser.get("/api/v1/session")).statusCode).toBe(200);

      const response = await call("DELETE", `/api/v1/admin/accounts/${accountId}/members/${member.userId}`);
      expect(response.statusCode, response.body).toBe(200);
      expect(response.json()).toEqual({ ok: true, loginDeleted: true });
      expect((await browser.get("/api/v1/session")).statusCode).toBe(401);
      expect(await t.ctx.db.selectFrom("memberships").select("id").where("user_id", "=", member.userId).execute()).toHaveLength(0);
      expect(t.mail.last(member.email)?.subject).toMatch(/removed/);
      const events = await eventsOf(accountId, "member.removed");
      expect(events).toHaveLength(1);
      expect(events[0]!.actor_user_id).toBeNull();
      expect(events[0]!.user_id).toBe(member.userId);
      expect(JSON.parse(events[0]!.detail).actor).toEqual({ tokenId, tokenName });
    });

    it("the last admin of an account cannot be removed: 409 last_admin, nothing changes", async () => {
      const { accountId, admin } = await team();
      const before = await snapshot();
      const response = await call("DELETE", `/api/v1/admin/accounts/${accountId}/members/${admin.userId}`);
      expect(response.statusCode).toBe(409);
      expect(response.json()).toMatchObject({ error: "last_admin" });
      expect(await snapshot()).toEqual(before);
    });

    it("records when the token was last used, writing it at most once a minute", async () => {
      const lastUsed = async (): Promise<number | null> =>
        (await t.ctx.db.selectFrom("api_tokens").select("last_used_at").where("id", "=", tokenId).executeTakeFirstOrThrow()).last_used_at;
      t.clock.advanceSeconds(3600);
      const start = t.clock.now();
      expect((await call("GET", "/api/v1/admin/accounts")).statusCode).toBe(200);
      expect(await lastUsed()).toBe(start);
      t.clock.advanceSeconds(t.config.limits.apiTokenTouchIntervalSeconds - 1);
      expect((await call("GET", "/api/v1/admin/accounts")).statusCode).toBe(200);
      expect(await lastUsed()).toBe(start);
      t.clock.advanceSeconds(1);
      expect((await call("GET", "/api/v1/admin/accounts")).statusCode).toBe(200);
      expect(await lastUsed()).toBe(t.clock.now());
    });
  });

  describe("who may call", () => {
    function expect401(response: LightMyRequestResponse, code: "unauthenticated" | "invalid_token"): void {
      expect(response.statusCode, response.body).toBe(401);
      expect(response.json()).toEqual({ error: code, message: expect.any(String) });
      expect(response.headers["www-authenticate"]).toMatch(/^Bearer\b/);
    }

    it("no Authorization header: 401 unauthenticated", async () => {
      expect401(await call("GET", "/api/v1/admin/accounts", { bearer: null }), "unauthenticated");
    });

    it("another scheme than Bearer is no token: 401 unauthenticated", async () => {
      for (const header of [`Basic ${Buffer.from(`x:${token}`).toString("base64")}`, token, `Token ${token}`]) {
        expect401(await call("GET", "/api/v1/admin/accounts", { bearer: null, headers: { authorization: header } }), "unauthenticated");
      }
    });

    it("a wrong, malformed or revoked token: 401 invalid_token, the same answer for each", async () => {
      const revoked = await createApiToken(t.ctx, { name: "old" });
      if (!revoked.ok) throw new Error(revoked.message);
      expect((await call("GET", "/api/v1/admin/accounts", { bearer: revoked.value.token })).statusCode).toBe(200);
      expect((await revokeApiToken(t.ctx, revoked.value.id)).ok).toBe(true);
      const answers = [];
      for (const wrong of [
        revoked.value.token,
        `lk_${newToken()}`,
        newToken(),
        "",
        "lk_",
        `${token}x`,
        token.slice(0, -1),
        token.toUpperCase(),
        `${token} ${token}`,
        "lk_" + "%".repeat(43),
      ]) {
        const response = await call("GET", "/api/v1/admin/accounts", { bearer: wrong });
        expect401(response, "invalid_token");
        answers.push(response.json());
      }
      expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1);
    });

    it("a revoked token stops working at once for every operation, and writing nothing", async () => {
      const created = await createApiToken(t.ctx, { name: "short-lived" });
      if (!created.ok) throw new Error(created.message);
      const { accountId, member } = await team();
      expect((await revokeApiToken(t.ctx, created.value.id)).ok).toBe(true);
      const before = await snapshot();
      const bearer = created.value.token;
      expect401(await call("GET", `/api/v1/admin/accounts/${accountId}`, { bearer }), "invalid_token");
      expect401(
        await call("POST", "/api/v1/admin/accounts", { bearer, json: { name: "X", adminEmail: "x@example.com" } }),
        "invalid_token",
      );
      expect401(
        await call("POST", `/api/v1/admin/accounts/${accountId}/invitations`, { bearer, json: { email: "y@example.com", role: "member" } }),
        "invalid_token",
      );
      expect401(await call("DELETE", `/api/v1/admin/accounts/${accountId}/members/${member.userId}`, { bearer }), "invalid_token");
      expect(await snapshot()).toEqual(before);
    });

    it("a session cookie is not a credential here, not even an Account Admin's: 401, nothing written", async () => {
      const { accountId, admin, member } = await team();
      const browser = await signedInBrowser(t, admin);
      const before = await snapshot();
      for (const [method, url] of [
        ["GET", "/api/v1/admin/accounts"],
        ["GET", `/api/v1/admin/accounts/${accountId}`],
        ["DELETE", `/api/v1/admin/accounts/${accountId}/members/${member.userId}`],
      ] as const) {
        const response = await browser.request(method, url, { headers: { origin: t.config.publicUrl.origin } });
        expect401(response, "unauthenticated");
      }
      const created = await browser.request("POST", "/api/v1/admin/accounts", {
        json: { name: "Cookie Corp", adminEmail: "c@example.com" },
        headers: { origin: t.config.publicUrl.origin },
      });
      expect401(created, "unauthenticated");
      expect(await snapshot()).toEqual(before);
      // The admin's session still works where sessions do.
      expect((await browser.get("/api/v1/session")).statusCode).toBe(200);
    });

    it("a token in the query string is ignored: 401 unauthenticated", async () => {
      for (const name of ["access_token", "token", "bearer", "authorization"]) {
        expect401(await call("GET", `/api/v1/admin/accounts?${name}=${token}`, { bearer: null }), "unauthenticated");
      }
    });

    it("an API token opens nothing but the operator API: on a session route it is no session", async () => {
      for (const url of ["/api/v1/session", "/api/v1/team/members", "/api/v1/verify"]) {
        const response = await call("GET", url);
        expect(response.statusCode, url).toBe(401);
        expect(response.json<{ error: string }>().error, url).toBe("unauthenticated");
      }
    });
  });

  describe("cross-site requests", () => {
    it("a bearer call is not refused for the Origin or Sec-Fetch-Site it sends: it carries no ambient credential", async () => {
      const response = await call("POST", "/api/v1/admin/accounts", {
        json: { name: "Origin Inc", adminEmail: "o@origin.example" },
        headers: { origin: "https://tools.example", "sec-fetch-site": "cross-site" },
      });
      expect(response.statusCode, response.body).toBe(201);
    });

    it("a bearer header does not turn a cookie request on a session route into a CSRF bypass", async () => {
      const { admin } = await team();
      const browser = await signedInBrowser(t, admin);
      const before = await snapshot();
      const response = await browser.request("POST", "/api/v1/team/invitations", {
        json: { email: "victim-invite@example.com", role: "admin" },
        headers: { origin: "https://evil.example", authorization: `Bearer ${token}` },
      });
      expect(response.statusCode).toBe(403);
      expect(response.json()).toMatchObject({ error: "csrf_invalid" });
      expect(await snapshot()).toEqual(before);
    });

    it("a cross-site request with an admin's cookies and no token changes nothing on the operator API", async () => {
      const { accountId, admin, member } = await team();
      const browser = await signedInBrowser(t, admin);
      const before = await snapshot();
      const removed = await browser.request("DELETE", `/api/v1/admin/accounts/${accountId}/members/${member.userId}`, {
        headers: { origin: "https://evil.example", "sec-fetch-site": "cross-site" },
      });
      expect(removed.statusCode).toBe(401);
      expect(await snapshot()).toEqual(before);
    });

    it("the operator API takes only JSON bodies: a form body is 415 and writes nothing", async () => {
      const before = await snapshot();
      const response = await call("POST", "/api/v1/admin/accounts", {
        payload: "name=Form+Inc&adminEmail=f%40example.com",
        headers: { "content-type": "application/x-www-form-urlencoded" },
      });
      expect(response.statusCode).toBe(415);
      expect(await snapshot()).toEqual(before);
    });
  });

  describe("session rules do not apply", () => {
    it("the two-factor policy of a cookie sent along does not block an operator call", async () => {
      const { accountId, member } = await team();
      const browser = await signedInBrowser(t, member);
      await t.ctx.db.updateTable("accounts").set({ two_factor_policy: "auth_app_required" }).where("id", "=", accountId).execute();
      expect((await browser.get("/api/v1/team/members")).statusCode).toBe(403);
      const response = await t.app.inject({
        method: "GET",
        url: `/api/v1/admin/accounts/${accountId}`,
        headers: { cookie: browser.cookieHeader(), authorization: `Bearer ${token}` },
      });
      expect(response.statusCode, response.body).toBe(200);
      expect(response.headers["set-cookie"]).toBeUndefined();
    });
  });

  describe("bad input", () => {
    it("bad bodies for a new account are a 4xx naming the problem, and nothing is written or sent", async () => {
      const cases: Array<[unknown, number, string]> = [
        [{}, 400, "invalid_request"],
        [{ name: "Acme" }, 400, "invalid_request"],
        [{ adminEmail: "a@example.com" }, 400, "invalid_request"],
        [{ name: 42, adminEmail: "a@example.com" }, 400, "invalid_request"],
        [{ name: "Acme", adminEmail: "a@example.com", role: "admin" }, 400, "invalid_request"],
        [[], 400, "invalid_request"],
        ["Acme", 400, "invalid_request"],
        [{ name: "", adminEmail: "a@example.com" }, 422, "account_name_invalid"],
        [{ name: "Acme\u202e", adminEmail: "a@example.com" }, 422, "account_name_invalid"],
        [{ name: "x".repeat(101), adminEmail: "a@example.com" }, 422, "account_name_invalid"],
        [{ name: "Acme", adminEmail: "not-an-email" }, 422, "email_invalid"],
        [{ name: "Acme", adminEmail: "a@example.com".repeat(400) }, 400, "invalid_request"],
      ];
      const before = await snapshot();
      for (const [body, status, code] of cases) {
        const response = await call("POST", "/api/v1/admin/accounts", { json: body });
        expect(response.statusCode, JSON.stringify(body).slice(0, 80)).toBe(status);
        expect(response.json(), JSON.stringify(body).slice(0, 80)).toEqual({ error: code, message: expect.any(String) });
      }
      const broken = await call("POST", "/api/v1/admin/accounts", { payload: "{", headers: { "content-type": "application/json" } });
      expect(broken.statusCode).toBe(400);
      expect(broken.json()).toMatchObject({ error: "invalid_json" });
      expect(await snapshot()).toEqual(before);
    });

    it("bad bodies for an invitation are a 4xx, and nothing is written or sent", async () => {
      const { accountId } = await team();
      const before = await snapshot();
      for (const [body, status] of [
        [{}, 400],
        [{ email: "n@example.com" }, 400],
        [{ email: "n@example.com", role: "owner" }, 400],
        [{ email: "n@example.com", role: "admin", extra: true }, 400],
        [{ email: "nope", role: "member" }, 422],
      ] as Array<[unknown, number]>) {
        const response = await call("POST", `/api/v1/admin/accounts/${accountId}/invitations`, { json: body });
        expect(response.statusCode, JSON.stringify(body)).toBe(status);
      }
      expect(await snapshot()).toEqual(before);
    });

    it("a bad page size or a cursor the server did not make is 400 invalid_request", async () => {
      for (const query of ["limit=0", "limit=abc", "limit=1000", "limit=-1", "cursor=nonsense", `cursor=${"x".repeat(300)}`, "other=1"]) {
        const response = await call("GET", `/api/v1/admin/accounts?${query}`);
        expect(response.statusCode, query).toBe(400);
        expect(response.json<{ error: string }>().error, query).toBe("invalid_request");
      }
    });

    it("unknown or malformed ids are 404, and nothing is written or sent", async () => {
      const { accountId, member } = await team();
      const other = await team();
      const unknown = newId();
      const before = await snapshot();
      const cases: Array<[Method, string, unknown, string]> = [
        ["GET", `/api/v1/admin/accounts/${unknown}`, undefined, "account_not_found"],
        ["GET", "/api/v1/admin/accounts/not-an-id", undefined, "account_not_found"],
        ["POST", `/api/v1/admin/accounts/${unknown}/invitations`, { email: "z@example.com", role: "member" }, "account_not_found"],
        ["POST", "/api/v1/admin/accounts/..%2F/invitations", { email: "z@example.com", role: "member" }, "account_not_found"],
        ["DELETE", `/api/v1/admin/accounts/${unknown}/members/${member.userId}`, undefined, "account_not_found"],
        ["DELETE", `/api/v1/admin/accounts/${accountId}/members/${unknown}`, undefined, "member_not_found"],
        ["DELETE", `/api/v1/admin/accounts/${accountId}/members/NOT-AN-ID`, undefined, "member_not_found"],
      ];
      for (const [method, url, json, code] of cases) {
        const response = await call(method, url, json === undefined ? {} : { json });
        expect(response.statusCode, `${method} ${url}`).toBe(404);
        expect(response.json(), `${method} ${url}`).toEqual({ error: code, message: expect.any(String) });
      }
      // A member of another account is not a member of this one.
      const response = await call("DELETE", `/api/v1/admin/accounts/${accountId}/members/${other.member.userId}`);
      expect(response.statusCode).toBe(404);
      expect(await snapshot()).toEqual(before);
    });
  });
});
