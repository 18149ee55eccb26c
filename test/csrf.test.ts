import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LightMyRequestResponse } from "fastify";
import { describeEachDialect } from "./helpers/dialects.js";
import { Browser, csrfFrom, rowCounts, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";

const EVIL = "https://evil.example";

describeEachDialect("CSRF protection", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  /** Counts of every table this suite's requests write, plus the mail sent: all must stay the same after a refusal. */
  const snapshot = (): Promise<Record<string, number>> =>
    rowCounts(t, ["challenges", "sessions", "attempt_counters", "audit_events", "email_links"]);

  function expectCsrfPage(response: LightMyRequestResponse): void {
    expect(response.statusCode).toBe(403);
    expect(response.headers["content-type"]).toMatch(/^text\/html/);
    expect(response.body).toContain("This form has expired");
  }

  function expectCsrfJson(response: LightMyRequestResponse): void {
    expect(response.statusCode).toBe(403);
    expect(response.json()).toEqual({ error: "csrf_invalid", message: expect.any(String) });
  }

  function apiLogin(member: { email: string; password: string }, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
    return t.app.inject({
      method: "POST",
      url: "/api/v1/login",
      headers: { "content-type": "application/json", ...headers },
      payload: JSON.stringify({ email: member.email, password: member.password }),
    });
  }

  describe("forms", () => {
    it("refuses the sign-in form without a _csrf field with 403 csrf_invalid, and changes nothing", async () => {
      const member = await seedMember(t);
      const browser = new Browser(t.app);
      await browser.get("/login");
      const before = await snapshot();
      const response = await browser.request("POST", "/login", { form: { email: member.email, password: member.password } });
      expectCsrfPage(response);
      expect(await snapshot()).toEqual(before);
      expect(browser.cookies.has("latchkey_challenge")).toBe(false);
    });

    it("refuses the sign-in form with a wrong _csrf value, and changes nothing", async () => {
      const member = await seedMember(t);
      const browser = new Browser(t.app);
      const real = csrfFrom((await browser.get("/login")).body);
      const before = await snapshot();
      for (const wrong of [
        "wrong",
        "",
        real.slice(0, -1),
        `${real}x`,
        real.toUpperCase() === real ? real.toLowerCase() : real.toUpperCase(),
      ]) {
        const response = await browser.request("POST", "/login", {
          form: { _csrf: wrong, email: member.email, password: member.password },
        });
        expectCsrfPage(response);
      }
      expect(await snapshot()).toEqual(before);
    });

    it("refuses a token taken from another browser (it is bound to this browser's CSRF cookie)", async () => {
      const member = await seedMember(t);
      const attacker = new Browser(t.app);
      const attackerToken = csrfFrom((await attacker.get("/login")).body);
      const victim = new Browser(t.app);
      await victim.get("/login");
      const before = await snapshot();
      expectCsrfPage(
        await victim.request("POST", "/login", { form: { _csrf: attackerToken, email: member.email, password: member.password } }),
      );
      expect(await snapshot()).toEqual(before);
    });

    it("refuses a token sent without the CSRF cookie", async () => {
      const member = await seedMember(t);
      const browser = new Browser(t.app);
      const token = csrfFrom((await browser.get("/login")).body);
      const response = await t.app.inject({
        method: "POST",
        url: "/login",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        payload: new URLSearchParams({ _csrf: token, email: member.email, password: member.password }).toString(),
      });
      expectCsrfPage(response);
    });

    it("refuses a form with a valid token when the browser says it came from another site", async () => {
      const member = await seedMember(t);
      const browser = new Browser(t.app);
      const token = csrfFrom((await browser.get("/login")).body);
      const before = await snapshot();
      const foreign: Array<Record<string, string>> = [{ origin: EVIL }, { "sec-fetch-site": "cross-site" }, { origin: "null" }];
      for (const headers of foreign) {
        const response = await browser.request("POST", "/login", {
          form: { _csrf: token, email: member.email, password: member.password },
          headers,
        });
        expect(response.statusCode).toBe(403);
        expect(response.body).toContain("This form has expired");
      }
      expect(await snapshot()).toEqual(before);
    });

    it("accepts the form with its token from the same origin", async () => {
      const member = await seedMember(t);
      const browser = new Browser(t.app);
      const token = csrfFrom((await browser.get("/login")).body);
      const response = await browser.request("POST", "/login", {
        form: { _csrf: token, email: member.email, password: member.password },
        headers: { origin: t.config.publicUrl.origin, "sec-fetch-site": "same-origin" },
      });
      expect(response.statusCode).toBe(303);
      expect(response.headers.location).toBe("/login/email");
    });

    it("refuses the web sign-out form without a token, and the session stays valid", async () => {
      const member = await seedMember(t);
      const browser = await signedInBrowser(t, member);
      const response = await browser.request("POST", "/logout", { form: {} });
      expectCsrfPage(response);
      expect((await browser.get("/api/v1/session")).statusCode).toBe(200);
    });

    it("refuses 'Send a new link' without a token, and sends no mail", async () => {
      const member = await seedMember(t);
      const browser = new Browser(t.app);
      await browser.signInWithPassword(member.email, member.password);
      t.clock.advanceSeconds(60);
      const before = await snapshot();
      expectCsrfPage(await browser.request("POST", "/login/email/resend", { form: {} }));
      expectCsrfPage(await browser.request("POST", "/login/email/resend", { form: { _csrf: "nope" } }));
      expect(await snapshot()).toEqual(before);
      // The sign-in itself is unharmed: the first link still works.
      expect((await browser.get(t.mail.lastLink(member.email))).statusCode).toBe(303);
    });
  });

  describe("API", () => {
    it("refuses POST /api/v1/login with Origin: https://evil.example (403 csrf_invalid), and changes nothing", async () => {
      const member = await seedMember(t);
      const before = await snapshot();
      const response = await apiLogin(member, { origin: EVIL });
      expectCsrfJson(response);
      expect(response.json().message).toContain(EVIL);
      expect(response.headers["set-cookie"]).toBeUndefined();
      expect(await snapshot()).toEqual(before);
    });

    it("refuses POST /api/v1/login with Sec-Fetch-Site: cross-site or same-site, and an opaque Origin", async () => {
      const member = await seedMember(t);
      const before = await snapshot();
      expectCsrfJson(await apiLogin(member, { "sec-fetch-site": "cross-site" }));
      expectCsrfJson(await apiLogin(member, { "sec-fetch-site": "same-site" }));
      expectCsrfJson(await apiLogin(member, { origin: "null" }));
      // Same scheme and host but another port is another origin.
      expectCsrfJson(await apiLogin(member, { origin: `${t.config.publicUrl.protocol}//${t.config.publicUrl.hostname}:1` }));
      expect(await snapshot()).toEqual(before);
    });

    it("refuses POST /api/v1/logout from another site, and the session stays valid", async () => {
      const member = await seedMember(t);
      const browser = await signedInBrowser(t, member);
      expectCsrfJson(await browser.request("POST", "/api/v1/logout", { headers: { origin: EVIL } }));
      expectCsrfJson(await browser.request("POST", "/api/v1/logout", { headers: { "sec-fetch-site": "cross-site" } }));
      expect((await browser.get("/api/v1/session")).statusCode).toBe(200);
    });

    it("answers an API POST with a form content type with 415, and changes nothing", async () => {
      const member = await seedMember(t);
      const before = await snapshot();
      for (const type of ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"]) {
        const payload = type.startsWith("application/x-www")
          ? new URLSearchParams({ email: member.email, password: member.password }).toString()
          : `email=${member.email}`;
        const response = await t.app.inject({ method: "POST", url: "/api/v1/login", headers: { "content-type": type }, payload });
        expect(response.statusCode, type).toBe(415);
        expect(response.json().error, type).toBe("unsupported_media_type");
      }
      expect(await snapshot()).toEqual(before);
    });

    it("accepts an API call without Origin or Sec-Fetch-Site (a program)", async () => {
      const member = await seedMember(t);
      const response = await apiLogin(member);
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({ next: "email_link" });
    });

    it("accepts an API call from the public origin itself", async () => {
      const member = await seedMember(t);
      const response = await apiLogin(member, { origin: t.config.publicUrl.origin, "sec-fetch-site": "same-origin" });
      expect(response.statusCode).toBe(200);
    });

    it("does not check safe methods: GET /api/v1/verify from another site still answers", async () => {
      const member = await seedMember(t);
      const browser = await signedInBrowser(t, member);
      const response = await browser.get("/api/v1/verify", { origin: EVIL, "sec-fetch-site": "cross-site" });
      expect(response.statusCode).toBe(200);
    });
  });
});
