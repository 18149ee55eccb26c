import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LightMyRequestResponse } from "fastify";
import { describeEachDialect } from "./helpers/dialects.js";
import { Browser, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { defaultLimits } from "../src/config.js";

const SESSION = "latchkey_session";
const IDLE = defaultLimits.sessionIdleTimeoutSeconds;
const ABSOLUTE = defaultLimits.sessionAbsoluteTimeoutSeconds;

/** The raw Set-Cookie line for `name`, as the browser would see it. */
function setCookieLine(response: LightMyRequestResponse, name: string): string | undefined {
  const header = response.headers["set-cookie"];
  const lines = header === undefined ? [] : Array.isArray(header) ? header : [header];
  return lines.find((line) => line.startsWith(`${name}=`));
}

function attributes(line: string): string[] {
  return line
    .split(";")
    .slice(1)
    .map((a) => a.trim().toLowerCase());
}

function sha256(value: string): string {
  return createHash("sha256").update(value, "utf8").digest("hex");
}

describeEachDialect("sessions", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  /** Requests with a fixed cookie header, as a client that kept an old cookie would send. */
  function withCookie(method: "GET" | "POST", url: string, cookie: string): Promise<LightMyRequestResponse> {
    return t.app.inject({ method, url, headers: { cookie } });
  }

  describe("tokens", () => {
    it("issues a new session token at every sign-in and stores only its hash", async () => {
      const member = await seedMember(t);
      const first = await signedInBrowser(t, member);
      const second = await signedInBrowser(t, member);
      const a = first.cookies.get(SESSION);
      const b = second.cookies.get(SESSION);
      expect(a).toBeDefined();
      expect(b).toBeDefined();
      expect(a).not.toBe(b);
      // 256 random bits, base64url: well over the 128 bits asked for.
      expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);

      const rows = await t.ctx.db.selectFrom("sessions").select("token_hash").where("user_id", "=", member.userId).execute();
      expect(rows).toHaveLength(2);
      const hashes = rows.map((r) => r.token_hash).sort();
      expect(hashes).toEqual([sha256(a as string), sha256(b as string)].sort());
      expect(hashes).not.toContain(a);
      expect(hashes).not.toContain(b);
    });

    it("gives a browser that signs in again a different token than the one it had", async () => {
      const member = await seedMember(t);
      const browser = await signedInBrowser(t, member);
      const before = browser.cookies.get(SESSION);
      // The sign-in page sends a signed-in browser home, so sign in again through the API from the same cookie jar.
      expect(
        (await browser.request("POST", "/api/v1/login", { json: { email: member.email, password: member.password } })).statusCode,
      ).toBe(200);
      expect((await browser.get(t.mail.lastLink(member.email))).statusCode).toBe(303);
      const after = browser.cookies.get(SESSION);
      expect(after).toBeDefined();
      expect(after).not.toBe(before);
      expect((await browser.get("/api/v1/session")).statusCode).toBe(200);
    });

    it("refuses a made-up or malformed session cookie", async () => {
      for (const value of ["x", "A".repeat(43), "../../etc/passwd", "%00%00"]) {
        const response = await withCookie("GET", "/api/v1/session", `${SESSION}=${value}`);
        expect(response.statusCode).toBe(401);
        expect(response.json().error).toBe("unauthenticated");
      }
    });
  });

  describe("cookie attributes", () => {
    it("sets the session cookie HttpOnly, SameSite=Lax, Path=/, without Secure, under an http public URL", async () => {
      const member = await seedMember(t);
      const browser = new Browser(t.app);
      const step = await browser.signInWithPassword(member.email, member.password);
      const challenge = setCookieLine(step, "latchkey_challenge");
      expect(challenge).toBeDefined();
      const linked = await browser.get(t.mail.lastLink(member.email));
      const line = setCookieLine(linked, SESSION);
      expect(line).toBeDefined();
      for (const l of [line as string, challenge as string]) {
        const attrs = attributes(l);
        expect(attrs).toContain("httponly");
        expect(attrs).toContain("samesite=lax");
        expect(attrs).toContain("path=/");
        expect(attrs).not.toContain("secure");
        expect(attrs.some((a) => a.startsWith("domain="))).toBe(false);
      }
      expect(attributes(challenge as string)).toContain(`max-age=${defaultLimits.challengeTtlSeconds}`);
      // The challenge cookie is cleared once it has done its job.
      expect(setCookieLine(linked, "latchkey_challenge")).toMatch(/^latchkey_challenge=;/);
    });

    it("uses the __Host- prefix and Secure for the session and challenge cookies under an https public URL", async () => {
      const secure = await startTestApp(dialect, { env: { LATCHKEY_PUBLIC_URL: "https://auth.example.com" } });
      try {
        const member = await seedMember(secure);
        const browser = new Browser(secure.app);
        const step = await browser.signInWithPassword(member.email, member.password);
        expect(step.statusCode).toBe(303);
        const challenge = setCookieLine(step, "__Host-latchkey_challenge");
        expect(challenge).toBeDefined();
        expect(setCookieLine(step, "latchkey_challenge")).toBeUndefined();
        const link = secure.mail.lastLink(member.email);
        expect(link.startsWith("https://auth.example.com/login/email/")).toBe(true);
        const linked = await browser.get(link);
        expect(linked.statusCode).toBe(303);
        const session = setCookieLine(linked, "__Host-latchkey_session");
        expect(session).toBeDefined();
        expect(setCookieLine(linked, SESSION)).toBeUndefined();
        for (const l of [session as string, challenge as string]) {
          const attrs = attributes(l);
          expect(attrs).toContain("secure");
          expect(attrs).toContain("httponly");
          expect(attrs).toContain("samesite=lax");
          expect(attrs).toContain("path=/");
          expect(attrs.some((a) => a.startsWith("domain="))).toBe(false);
        }
        const me = await browser.get("/api/v1/session");
        expect(me.statusCode).toBe(200);
        expect(me.json().user.email).toBe(member.email);
        // The unprefixed name means nothing here: a cookie planted by a subdomain cannot pose as a session.
        const planted = await secure.app.inject({
          method: "GET",
          url: "/api/v1/session",
          headers: { cookie: `${SESSION}=${browser.cookies.get("__Host-latchkey_session")}` },
        });
        expect(planted.statusCode).toBe(401);
      } finally {
        await secure.close();
      }
    });
  });

  describe("timeouts", () => {
    it("keeps a session after 59 minutes without a request and ends it after 60", async () => {
      const member = await seedMember(t);
      const browser = await signedInBrowser(t, member);
      const cookie = browser.cookieHeader();
      t.clock.advanceSeconds(59 * 60);
      expect((await withCookie("GET", "/api/v1/session", cookie)).statusCode).toBe(200);
      // That request counted as activity: another 59 minutes are fine.
      t.clock.advanceSeconds(59 * 60);
      expect((await withCookie("GET", "/api/v1/verify", cookie)).statusCode).toBe(200);
      t.clock.advanceSeconds(IDLE);
      const expired = await withCookie("GET", "/api/v1/session", cookie);
      expect(expired.statusCode).toBe(401);
      expect(expired.json().error).toBe("unauthenticated");
      expect((await withCookie("GET", "/api/v1/verify", cookie)).statusCode).toBe(401);
      const rows = await t.ctx.db.selectFrom("sessions").select("id").where("user_id", "=", member.userId).execute();
      expect(rows).toHaveLength(0);
    });

    it("ends a session one second past the idle timeout", async () => {
      const member = await seedMember(t);
      const browser = await signedInBrowser(t, member);
      t.clock.advanceSeconds(IDLE + 1);
      const response = await browser.get("/api/v1/session");
      expect(response.statusCode).toBe(401);
      // The dead cookie is cleared in the browser.
      expect(setCookieLine(response, SESSION)).toMatch(/^latchkey_session=;/);
      expect(browser.cookies.has(SESSION)).toBe(false);
    });

    it("ends a session 12 hours after sign-in even with a request every 30 minutes", async () => {
      const member = await seedMember(t);
      const browser = await signedInBrowser(t, member);
      const cookie = browser.cookieHeader();
      for (let elapsed = 30 * 60; elapsed < ABSOLUTE; elapsed += 30 * 60) {
        t.clock.advanceSeconds(30 * 60);
        const response = await withCookie("GET", "/api/v1/session", cookie);
        expect(response.statusCode, `after ${elapsed / 60} minutes`).toBe(200);
      }
      t.clock.advanceSeconds(30 * 60);
      expect((await withCookie("GET", "/api/v1/session", cookie)).statusCode).toBe(401);
      expect((await withCookie("GET", "/api/v1/verify", cookie)).statusCode).toBe(401);
    });

    it("reports the absolute end of the session in GET /api/v1/session", async () => {
      const member = await seedMember(t);
      const signInAt = t.clock.now();
      const browser = await signedInBrowser(t, member);
      const body = (await browser.get("/api/v1/session")).json();
      expect(body.expiresAt).toBe(new Date(signInAt + ABSOLUTE * 1000).toISOString());
    });
  });

  describe("sign-out", () => {
    it("POST /api/v1/logout answers 204 and the old cookie no longer works anywhere", async () => {
      const member = await seedMember(t);
      const browser = await signedInBrowser(t, member);
      const cookie = browser.cookieHeader();
      expect((await withCookie("GET", "/api/v1/verify", cookie)).statusCode).toBe(200);
      const response = await browser.request("POST", "/api/v1/logout");
      expect(response.statusCode).toBe(204);
      expect(response.body).toBe("");
      expect(setCookieLine(response, SESSION)).toMatch(/^latchkey_session=;/);
      expect(browser.cookies.has(SESSION)).toBe(false);

      const session = await withCookie("GET", "/api/v1/session", cookie);
      expect(session.statusCode).toBe(401);
      expect(session.json().error).toBe("unauthenticated");
      expect((await withCookie("GET", "/api/v1/verify", cookie)).statusCode).toBe(401);
      expect((await withCookie("GET", "/", cookie)).headers.location).toBe("/login");
      const rows = await t.ctx.db.selectFrom("sessions").select("id").where("user_id", "=", member.userId).execute();
      expect(rows).toHaveLength(0);
      const events = await t.ctx.db
        .selectFrom("audit_events")
        .select("type")
        .where("user_id", "=", member.userId)
        .where("type", "=", "session.signed_out")
        .execute();
      expect(events).toHaveLength(1);
    });

    it("POST /api/v1/logout without a session is still 204", async () => {
      const response = await t.app.inject({ method: "POST", url: "/api/v1/logout" });
      expect(response.statusCode).toBe(204);
    });

    it("signs out only the session that asked, not the person's other browsers", async () => {
      const member = await seedMember(t);
      const laptop = await signedInBrowser(t, member);
      const phone = await signedInBrowser(t, member);
      expect((await laptop.request("POST", "/api/v1/logout")).statusCode).toBe(204);
      expect((await laptop.get("/api/v1/session")).statusCode).toBe(401);
      expect((await phone.get("/api/v1/session")).statusCode).toBe(200);
    });

    it("the web sign-out form revokes the session server-side and shows the sign-in page", async () => {
      const member = await seedMember(t);
      const browser = await signedInBrowser(t, member);
      const cookie = browser.cookieHeader();
      const home = await browser.get("/");
      expect(home.statusCode).toBe(200);
      expect(home.body).toContain("Sign out");
      const response = await browser.submit("/", "/logout", {});
      expect(response.statusCode).toBe(303);
      expect(response.headers.location).toBe("/login?notice=signed_out");
      const page = await browser.get("/login?notice=signed_out");
      expect(page.statusCode).toBe(200);
      expect(page.body).toContain("You are signed out.");
      expect((await withCookie("GET", "/api/v1/session", cookie)).statusCode).toBe(401);
      expect((await withCookie("GET", "/api/v1/verify", cookie)).statusCode).toBe(401);
      const again = await withCookie("GET", "/", cookie);
      expect(again.statusCode).toBe(303);
      expect(again.headers.location).toBe("/login");
    });
  });

  describe("session API", () => {
    it("GET /api/v1/verify answers 200 with the user's id and email headers", async () => {
      const member = await seedMember(t);
      const browser = await signedInBrowser(t, member);
      const response = await browser.get("/api/v1/verify");
      expect(response.statusCode).toBe(200);
      expect(response.headers["x-latchkey-user-id"]).toBe(member.userId);
      expect(response.headers["x-latchkey-email"]).toBe(member.email);
      expect(response.headers["x-latchkey-account-id"]).toBe(member.accountId);
      expect(response.headers["x-latchkey-role"]).toBe("member");
    });

    it("GET /api/v1/verify answers 401 without a session, and sets no identity headers", async () => {
      const response = await t.app.inject({ method: "GET", url: "/api/v1/verify" });
      expect(response.statusCode).toBe(401);
      expect(response.json()).toEqual({ error: "unauthenticated", message: expect.any(String) });
      expect(response.headers["x-latchkey-user-id"]).toBeUndefined();
      expect(response.headers["x-latchkey-email"]).toBeUndefined();
    });

    it("GET /api/v1/session describes the user, the account, the role and the 2FA method", async () => {
      const member = await seedMember(t, { name: "Ada Lovelace", accountName: "Analytical Engines", role: "admin" });
      const browser = await signedInBrowser(t, member);
      const response = await browser.get("/api/v1/session");
      expect(response.statusCode).toBe(200);
      expect(response.headers["content-type"]).toMatch(/^application\/json/);
      const body = response.json();
      // The contract of PRODUCT.md; later features may add fields beside these, never change them.
      expect(body).toMatchObject({
        user: { id: member.userId, email: member.email, name: "Ada Lovelace" },
        account: { id: member.accountId, name: "Analytical Engines" },
        role: "admin",
        twoFactor: { method: "email_link" },
        expiresAt: expect.any(String),
      });
      expect(Object.keys(body.user).sort()).toEqual(["email", "id", "name"]);
      expect(Object.keys(body.account).sort()).toEqual(["id", "name"]);
    });

    it("GET /api/v1/session answers 401 unauthenticated without a cookie", async () => {
      const response = await t.app.inject({ method: "GET", url: "/api/v1/session" });
      expect(response.statusCode).toBe(401);
      expect(response.json()).toEqual({ error: "unauthenticated", message: expect.any(String) });
    });

    it("a half-finished sign-in (challenge cookie only) is not a session", async () => {
      const member = await seedMember(t);
      const browser = new Browser(t.app);
      const step = await browser.request("POST", "/api/v1/login", { json: { email: member.email, password: member.password } });
      expect(step.statusCode).toBe(200);
      expect((await browser.get("/api/v1/session")).statusCode).toBe(401);
      expect((await browser.get("/api/v1/verify")).statusCode).toBe(401);
    });
  });

  describe("caching", () => {
    it("answers every request with Cache-Control: no-store", async () => {
      const member = await seedMember(t);
      const browser = new Browser(t.app);
      const responses: Array<[string, LightMyRequestResponse]> = [];
      const record = (label: string, r: LightMyRequestResponse): LightMyRequestResponse => {
        responses.push([label, r]);
        return r;
      };
      record("GET /login", await browser.get("/login"));
      record("POST /login", await browser.signInWithPassword(member.email, member.password));
      record("GET /login/email", await browser.get("/login/email"));
      record("GET link", await browser.get(t.mail.lastLink(member.email)));
      record("GET /", await browser.get("/"));
      record("GET /api/v1/session", await browser.get("/api/v1/session"));
      record("GET /api/v1/verify", await browser.get("/api/v1/verify"));
      record("POST /api/v1/logout", await browser.request("POST", "/api/v1/logout"));
      record("GET /api/v1/session 401", await browser.get("/api/v1/session"));
      record("GET /api/v1/verify 401", await browser.get("/api/v1/verify"));
      record(
        "POST /api/v1/login 401",
        await browser.request("POST", "/api/v1/login", { json: { email: member.email, password: "wrong password" } }),
      );
      record("POST /api/v1/login 400", await browser.request("POST", "/api/v1/login", { json: { email: 5 } }));
      record("GET /nowhere", await browser.get("/nowhere"));
      record("GET /api/v1/nowhere", await browser.get("/api/v1/nowhere"));
      record("GET /healthz", await browser.get("/healthz"));
      record("GET /api/v1/openapi.json", await browser.get("/api/v1/openapi.json"));
      record(
        "POST /api/v1/login 413",
        await t.app.inject({
          method: "POST",
          url: "/api/v1/login",
          headers: { "content-type": "application/json" },
          payload: JSON.stringify({ email: "x".repeat(70_000) }),
        }),
      );
      record(
        "POST /api/v1/login 415",
        await t.app.inject({ method: "POST", url: "/api/v1/login", headers: { "content-type": "text/plain" }, payload: "hi" }),
      );
      record(
        "POST /api/v1/login 403",
        await browser.request("POST", "/api/v1/login", { json: {}, headers: { origin: "https://evil.example" } }),
      );
      record("POST /login 403", await browser.request("POST", "/login", { form: { email: member.email, password: member.password } }));
      for (const [label, response] of responses) {
        expect(response.statusCode, label).toBeLessThan(500);
        expect(response.headers["cache-control"], label).toBe("no-store");
      }
    });
  });
});
