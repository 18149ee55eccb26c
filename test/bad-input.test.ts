import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { InjectOptions, LightMyRequestResponse } from "fastify";
import { describeEachDialect } from "./helpers/dialects.js";
import { Browser, csrfFrom, rowCounts, seedMember, startTestApp, type TestApp } from "./helpers/app.js";
import { defaultLimits } from "../src/config.js";

const BODY_LIMIT = defaultLimits.bodyLimitBytes;

describeEachDialect("bad input", (dialect) => {
  let t: TestApp;
  /** Every response of the suite: none may be a 5xx. */
  const seen: Array<{ label: string; status: number }> = [];
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });
  afterEach(() => {
    t.clock.advanceSeconds(defaultLimits.passwordAttemptWindowSeconds);
  });

  async function inject(label: string, options: InjectOptions): Promise<LightMyRequestResponse> {
    const response = await t.app.inject(options);
    seen.push({ label, status: response.statusCode });
    expect(response.statusCode, `${label}: ${response.body.slice(0, 300)}`).toBeLessThan(500);
    return response;
  }

  function postJson(label: string, url: string, payload: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
    return inject(label, { method: "POST", url, headers: { "content-type": "application/json", ...headers }, payload });
  }

  /** Counts of every table this suite's requests write, plus the mail sent: all must stay the same after a refusal. */
  const snapshot = (): Promise<Record<string, number>> => rowCounts(t, ["challenges", "attempt_counters", "audit_events", "sessions"]);

  /** A browser on the sign-in page, and a raw form POST carrying its cookies and CSRF token. */
  async function formPoster(): Promise<(label: string, body: string, url?: string) => Promise<LightMyRequestResponse>> {
    const browser = new Browser(t.app);
    const csrf = csrfFrom((await browser.get("/login")).body);
    return (label, body, url = "/login") =>
      inject(label, {
        method: "POST",
        url,
        headers: { cookie: browser.cookieHeader(), "content-type": "application/x-www-form-urlencoded" },
        payload: `_csrf=${encodeURIComponent(csrf)}&${body}`,
      });
  }

  describe("malformed and oversized bodies", () => {
    it("answers malformed JSON with 400 invalid_json, and writes nothing", async () => {
      const before = await snapshot();
      for (const payload of ['{"email": "a@example.com", "password": ', "{email: 1}", "not json", "{'a':1}", '{"a":1}}', "\u0000"]) {
        const response = await postJson(`malformed ${JSON.stringify(payload)}`, "/api/v1/login", payload);
        expect(response.statusCode).toBe(400);
        expect(response.json()).toEqual({ error: "invalid_json", message: "The request body is not valid JSON." });
      }
      expect(await snapshot()).toEqual(before);
    });

    it("answers a JSON body trying prototype pollution with 400", async () => {
      const response = await postJson("__proto__", "/api/v1/login", '{"email":"a@example.com","password":"x","__proto__":{"admin":true}}');
      expect(response.statusCode).toBe(400);
      expect(["invalid_json", "invalid_request"]).toContain(response.json().error);
    });

    it("answers a body over 64 KiB with 413 payload_too_large, on the API and on forms", async () => {
      const before = await snapshot();
      const big = JSON.stringify({ email: "a@example.com", password: "x".repeat(BODY_LIMIT) });
      const api = await postJson("big json", "/api/v1/login", big);
      expect(api.statusCode).toBe(413);
      expect(api.json()).toEqual({ error: "payload_too_large", message: expect.any(String) });

      const post = await formPoster();
      const form = await post("big form", `email=a%40example.com&password=${"x".repeat(BODY_LIMIT)}`);
      expect(form.statusCode).toBe(413);
      expect(form.headers["content-type"]).toMatch(/^text\/html/);
      expect(form.body).toContain("That was too much data");
      expect(await snapshot()).toEqual(before);
    });

    it("accepts a body of exactly 64 KiB as far as its size goes (then judges its fields)", async () => {
      const skeleton = JSON.stringify({ email: "a@example.com", password: "" });
      const exact = JSON.stringify({ email: "a@example.com", password: "x".repeat(BODY_LIMIT - skeleton.length) });
      expect(Buffer.byteLength(exact)).toBe(BODY_LIMIT);
      const response = await postJson("exact limit", "/api/v1/login", exact);
      expect(response.statusCode).toBe(400);
      expect(response.json().error).toBe("invalid_request");
      expect(response.json().message).toContain("password");

      const over = await postJson(
        "one byte over",
        "/api/v1/login",
        JSON.stringify({ email: "a@example.com", password: "x".repeat(BODY_LIMIT - skeleton.length + 1) }),
      );
      expect(over.statusCode).toBe(413);
    });

    it("answers a malformed form body with 4xx, never 5xx", async () => {
      const post = await formPoster();
      for (const body of ["%", "email=%zz&password=%E0%A4%A", "=&=&&&", "email", "email[]=a&password[]=b", "email[a]=1&password=2"]) {
        const response = await post(`form ${body}`, body);
        expect(response.statusCode).toBeGreaterThanOrEqual(400);
      }
    });
  });

  describe("wrong shapes on POST /api/v1/login", () => {
    const cases: Array<{ label: string; body: unknown; field: string; says: RegExp }> = [
      { label: "email as a number", body: { email: 5, password: "x" }, field: "email", says: /must be a string/ },
      { label: "password as a number", body: { email: "a@example.com", password: 12345678 }, field: "password", says: /must be a string/ },
      { label: "email as an array", body: { email: ["a@example.com"], password: "x" }, field: "email", says: /must be a string/ },
      {
        label: "password as an object",
        body: { email: "a@example.com", password: { $ne: null } },
        field: "password",
        says: /must be a string/,
      },
      { label: "email null", body: { email: null, password: "x" }, field: "email", says: /must be a string/ },
      { label: "email as a boolean", body: { email: true, password: "x" }, field: "email", says: /must be a string/ },
      { label: "email missing", body: { password: "x" }, field: "email", says: /is required/ },
      { label: "password missing", body: { email: "a@example.com" }, field: "password", says: /is required/ },
      { label: "an extra field", body: { email: "a@example.com", password: "x", admin: true }, field: "admin", says: /admin/ },
    ];
    for (const c of cases) {
      it(`answers ${c.label} with 400 invalid_request naming "${c.field}"`, async () => {
        const before = await snapshot();
        const response = await postJson(c.label, "/api/v1/login", JSON.stringify(c.body));
        expect(response.statusCode).toBe(400);
        const body = response.json();
        expect(body.error).toBe("invalid_request");
        expect(body.message).toContain(c.field);
        expect(body.message).toMatch(c.says);
        expect(await snapshot()).toEqual(before);
      });
    }

    it("answers a body that is not an object (array, null, string, number) with 400 invalid_request", async () => {
      for (const payload of ["[]", '[{"email":"a@example.com","password":"x"}]', '"a@example.com"', "42", "true"]) {
        const response = await postJson(`top-level ${payload}`, "/api/v1/login", payload);
        expect(response.statusCode, payload).toBe(400);
        expect(response.json().error, payload).toBe("invalid_request");
      }
      const nul = await postJson("top-level null", "/api/v1/login", "null");
      expect(nul.statusCode).toBe(400);
      expect(nul.json().error).toBe("invalid_request");
      expect(nul.json().message).toContain("email");
    });

    it("answers an extra field on POST /api/v1/login/email-link with 400 invalid_request", async () => {
      const response = await postJson("email-link extra", "/api/v1/login/email-link", JSON.stringify({ email: "a@example.com" }));
      expect(response.statusCode).toBe(400);
      expect(response.json().error).toBe("invalid_request");
      expect(response.json().message).toContain("email");
    });
  });

  describe("forms", () => {
    it("refuses a repeated form field with 400, naming it, and signs nobody in", async () => {
      const member = await seedMember(t);
      const post = await formPoster();
      const before = await snapshot();
      const response = await post(
        "repeated email",
        `email=${encodeURIComponent(member.email)}&email=${encodeURIComponent("other@example.com")}&password=${encodeURIComponent(member.password)}`,
      );
      expect(response.statusCode).toBe(400);
      expect(response.headers["content-type"]).toMatch(/^text\/html/);
      expect(response.body).toContain("email");
      const pw = await post(
        "repeated password",
        `email=${encodeURIComponent(member.email)}&password=a&password=${encodeURIComponent(member.password)}`,
      );
      expect(pw.statusCode).toBe(400);
      expect(pw.body).toContain("password");
      expect(await snapshot()).toEqual(before);
    });

    it("refuses a form with a missing field with 400 naming it", async () => {
      const post = await formPoster();
      const response = await post("missing password", "email=a%40example.com");
      expect(response.statusCode).toBe(400);
      expect(response.body).toContain("password");
    });
  });

  describe("unknown routes", () => {
    it("answers an unknown /api route with 404 not_found JSON", async () => {
      for (const [method, url] of [
        ["GET", "/api/v1/nope"],
        ["GET", "/api/v2/session"],
        ["POST", "/api/v1/nope"],
        ["GET", "/api/v1/session/extra"],
      ] as const) {
        const response = await inject(`${method} ${url}`, { method, url });
        expect(response.statusCode).toBe(404);
        expect(response.headers["content-type"]).toMatch(/^application\/json/);
        expect(response.json()).toEqual({ error: "not_found", message: expect.stringContaining(url) });
      }
    });

    it("answers an unknown page with a 404 HTML page", async () => {
      const response = await inject("GET /nope", { method: "GET", url: "/nope?x=<script>" });
      expect(response.statusCode).toBe(404);
      expect(response.headers["content-type"]).toMatch(/^text\/html/);
      expect(response.body).toContain("Page not found");
      expect(response.body).not.toContain("<script>");
    });

    it("answers a wrong method on a known path with 4xx", async () => {
      for (const [method, url] of [
        ["DELETE", "/api/v1/session"],
        ["PUT", "/api/v1/login"],
        ["GET", "/api/v1/logout"],
        ["GET", "/logout"],
      ] as const) {
        const response = await inject(`${method} ${url}`, { method, url });
        expect(response.statusCode, `${method} ${url}`).toBeGreaterThanOrEqual(400);
      }
    });
  });

  describe("unicode and email forms", () => {
    it("signs in with an emoji and CJK password", async () => {
      const member = await seedMember(t, { password: "🔐 密码は秘密です 🗝️ пароль" });
      const api = await postJson("emoji password", "/api/v1/login", JSON.stringify({ email: member.email, password: member.password }));
      expect(api.statusCode).toBe(200);
      const browser = new Browser(t.app);
      const form = await browser.signInWithPassword(member.email, member.password);
      expect(form.statusCode).toBe(303);
      expect((await browser.get(t.mail.lastLink(member.email))).statusCode).toBe(303);
      expect((await browser.get("/api/v1/session")).statusCode).toBe(200);
    });

    it("refuses the same emoji password with one character changed", async () => {
      const member = await seedMember(t, { password: "🔐 密码は秘密です 🗝️ пароль" });
      const response = await postJson(
        "emoji wrong",
        "/api/v1/login",
        JSON.stringify({ email: member.email, password: "🔐 密码は秘密です 🔑 пароль" }),
      );
      expect(response.statusCode).toBe(401);
    });

    it("treats the NFC and NFD forms of a password as the same password", async () => {
      const nfc = "Crème brûlée à la Çarte".normalize("NFC");
      const nfd = nfc.normalize("NFD");
      expect(nfd).not.toBe(nfc);
      const setWithNfc = await seedMember(t, { password: nfc });
      expect((await postJson("nfd for nfc", "/api/v1/login", JSON.stringify({ email: setWithNfc.email, password: nfd }))).statusCode).toBe(
        200,
      );
      const setWithNfd = await seedMember(t, { password: nfd });
      expect((await postJson("nfc for nfd", "/api/v1/login", JSON.stringify({ email: setWithNfd.email, password: nfc }))).statusCode).toBe(
        200,
      );
      // Through the form too.
      const browser = new Browser(t.app);
      expect((await browser.signInWithPassword(setWithNfc.email, nfd)).statusCode).toBe(303);
      // But the letters themselves still matter.
      expect(
        (await postJson("no accents", "/api/v1/login", JSON.stringify({ email: setWithNfc.email, password: "Creme brulee a la Carte" })))
          .statusCode,
      ).toBe(401);
    });

    it("matches the email case-insensitively and ignores surrounding spaces", async () => {
      const member = await seedMember(t, { email: "ann.lee@example.com" });
      for (const variant of ["ANN.LEE@EXAMPLE.COM", "Ann.Lee@Example.com", "  ann.lee@example.com\t"]) {
        const response = await postJson(`email ${variant}`, "/api/v1/login", JSON.stringify({ email: variant, password: member.password }));
        expect(response.statusCode, variant).toBe(200);
      }
      // The link goes to the stored address.
      expect(t.mail.last()?.to).toBe("ann.lee@example.com");
      const browser = new Browser(t.app);
      expect((await browser.signInWithPassword("ANN.LEE@example.COM", member.password)).statusCode).toBe(303);
    });

    it("answers a 10 KB string as email with 4xx, on the API and the form", async () => {
      const huge = `${"a".repeat(10 * 1024)}@example.com`;
      const api = await postJson("10 KB email", "/api/v1/login", JSON.stringify({ email: huge, password: "whatever password" }));
      expect(api.statusCode).toBeGreaterThanOrEqual(400);
      expect(api.json().message).toContain("email");
      const post = await formPoster();
      const form = await post("10 KB email form", `email=${huge}&password=x`);
      expect(form.statusCode).toBeGreaterThanOrEqual(400);
    });

    it("answers long non-ASCII emails just under the field limit with 4xx", async () => {
      // Random CJK (3 bytes each in UTF-8) and emoji (4 bytes): large in bytes, within the field's length bound.
      let cjk = "";
      for (let i = 0; i < 1000; i++) cjk += String.fromCodePoint(0x4e00 + ((i * 7919) % 20000));
      let emoji = "";
      for (let i = 0; i < 250; i++) emoji += String.fromCodePoint(0x1f300 + ((i * 31) % 700));
      for (const [label, email] of [
        ["cjk", `${cjk}@example.com`],
        ["emoji", `${emoji}@example.com`],
      ] as const) {
        const response = await postJson(`long ${label} email`, "/api/v1/login", JSON.stringify({ email, password: "whatever password" }));
        expect(response.statusCode, label).toBeGreaterThanOrEqual(400);
      }
    });

    it("answers control characters and NUL bytes in the email or password with 4xx", async () => {
      for (const [label, body] of [
        ["nul in email", { email: "ann\u0000@example.com", password: "whatever password" }],
        ["nul only email", { email: "\u0000", password: "whatever password" }],
        ["newline in email", { email: "ann@example.com\r\nBcc: x@evil.example", password: "whatever password" }],
        ["nul in password", { email: "ann@example.com", password: "pass\u0000word" }],
        ["lone surrogate", { email: "ann@example.com", password: "\ud800abc" }],
      ] as const) {
        const response = await postJson(label, "/api/v1/login", JSON.stringify(body));
        expect(response.statusCode, label).toBeGreaterThanOrEqual(400);
        expect(response.json().error, label).toMatch(/^(invalid_request|invalid_credentials)$/);
      }
      const post = await formPoster();
      const form = await post("nul in form email", "email=ann%00%40example.com&password=whatever");
      expect(form.statusCode).toBeGreaterThanOrEqual(400);
    });

    it("answers an empty email and password with 401 invalid_credentials, like any wrong pair", async () => {
      const response = await postJson("empty strings", "/api/v1/login", JSON.stringify({ email: "", password: "" }));
      expect(response.statusCode).toBe(401);
      expect(response.json().error).toBe("invalid_credentials");
    });
  });

  describe("odd headers", () => {
    it("answers odd content types and headers with 4xx", async () => {
      const response1 = await inject("charset latin1", {
        method: "POST",
        url: "/api/v1/login",
        headers: { "content-type": "application/json; charset=latin1" },
        payload: '{"email":"a@example.com","password":"x"}',
      });
      expect(response1.statusCode).toBeLessThan(500);
      const response2 = await inject("no content type with body", { method: "POST", url: "/api/v1/login", payload: "hello" });
      expect(response2.statusCode).toBeGreaterThanOrEqual(400);
      const response3 = await inject("garbage cookie", {
        method: "GET",
        url: "/api/v1/session",
        headers: { cookie: "latchkey_session=%E0%A4%A; latchkey_csrf==;;; =x" },
      });
      expect(response3.statusCode).toBe(401);
      const response4 = await inject("garbage cookie on a form", {
        method: "POST",
        url: "/login",
        headers: { cookie: "latchkey_csrf=%%%", "content-type": "application/x-www-form-urlencoded" },
        payload: "_csrf=x&email=a&password=b",
      });
      expect(response4.statusCode).toBe(403);
    });
  });

  it("never answered with a 5xx in this suite", () => {
    expect(seen.length).toBeGreaterThan(40);
    expect(seen.filter((s) => s.status >= 500)).toEqual([]);
  });
});
