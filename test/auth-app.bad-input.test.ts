import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, expect, it } from "vitest";
import { hashToken } from "../src/auth/tokens.js";
import { describeEachDialect } from "./helpers/dialects.js";
import { Browser, csrfFrom, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { enableAuthApp, passwordStep, STEP_SECONDS, totpCode, wrongCode, type EnabledAuthApp } from "./helpers/auth-app.js";

const CHALLENGE_COOKIE = "latchkey_challenge";
const TEN_KB = "1".repeat(10 * 1024);

type Case = { name: string; body: unknown; error: string; message: RegExp };

/** Bodies that are not a code. `error`/`message` are what the API must answer. */
const common: Case[] = [
  { name: "a 10 KB string", body: { code: TEN_KB }, error: "invalid_request", message: /"code" is too long/ },
  { name: "a 10 KB string of spaces", body: { code: " ".repeat(10 * 1024) }, error: "invalid_request", message: /"code" is too long/ },
  { name: "a number instead of a string", body: { code: 123456 }, error: "invalid_request", message: /"code" must be a string/ },
  { name: "null", body: { code: null }, error: "invalid_request", message: /"code" must be a string/ },
  { name: "a boolean", body: { code: true }, error: "invalid_request", message: /"code" must be a string/ },
  { name: "an array", body: { code: ["123456"] }, error: "invalid_request", message: /"code" must be a string/ },
  { name: "an object", body: { code: { value: "123456" } }, error: "invalid_request", message: /"code" must be a string/ },
  { name: "no code", body: {}, error: "invalid_request", message: /"code" is required/ },
  { name: "extra fields", body: { code: "123456", remember: true }, error: "invalid_request", message: /remember/ },
  { name: "a JSON array body", body: ["123456"], error: "invalid_request", message: /./ },
  { name: "a JSON string body", body: "123456", error: "invalid_request", message: /./ },
];

const appCodes: Case[] = [
  ...common,
  ...[
    ["empty", ""],
    ["spaces only", "      "],
    ["5 digits", "12345"],
    ["7 digits", "1234567"],
    ["letters", "abcdef"],
    ["Arabic-Indic digits", "١٢٣٤٥٦"],
    ["fullwidth digits", "１２３４５６"],
    ["three groups of two", "12 34 56"],
    ["a NUL byte", "123\u0000456"],
    ["a right-to-left override", "\u202e123456"],
    ["an emoji", "12345😀"],
    ["SQL", "' OR 1=1 --"],
  ].map(([name, code]) => ({ name: name as string, body: { code }, error: "invalid_code_format", message: /6 digits|6-digit/ })),
];

const recoveryCodes: Case[] = [
  ...common,
  ...[
    ["empty", ""],
    ["spaces only", "      "],
    ["5 digits", "12345"],
    ["7 digits", "1234567"],
    ["6 letters", "abcdef"],
    ["16 characters", "abcde-fghjk-mnpqr1"],
    ["a letter not in the alphabet", "uuuuu-uuuuu-uuuuu"],
    ["Arabic-Indic digits", "١٢٣٤٥-١٢٣٤٥-١٢٣٤٥"],
    ["fullwidth letters", "ａｂｃｄｅ-ｆｇｈｊｋ-ｍｎｐｑｒ"],
    ["a NUL byte", "abcde-fghjk\u0000mnpqr"],
    ["SQL", "' OR 1=1 --"],
  ].map(([name, code]) => ({ name: name as string, body: { code }, error: "invalid_code_format", message: /15 letters and digits/ })),
];

describeEachDialect("auth app bad input", (dialect) => {
  let t: TestApp;
  let member: Awaited<ReturnType<typeof seedMember>> & EnabledAuthApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
    const seeded = await seedMember(t);
    member = { ...seeded, ...(await enableAuthApp(t, seeded)) };
    t.clock.advanceSeconds(STEP_SECONDS);
  });
  afterAll(async () => {
    await t?.close();
  });

  function post(browser: Browser, url: string, body: unknown): Promise<LightMyRequestResponse> {
    return t.app.inject({
      method: "POST",
      url,
      headers: { cookie: browser.cookieHeader(), "content-type": "application/json" },
      payload: JSON.stringify(body),
    });
  }

  async function failedAttempts(browser: Browser): Promise<number> {
    const token = browser.cookies.get(CHALLENGE_COOKIE) as string;
    const row = await t.ctx.db
      .selectFrom("challenges")
      .select("failed_attempts")
      .where("token_hash", "=", hashToken(token))
      .executeTakeFirstOrThrow();
    return row.failed_attempts;
  }

  async function userCounter(): Promise<number | undefined> {
    const row = await t.ctx.db
      .selectFrom("attempt_counters")
      .select("count")
      .where("key", "=", `code:fail:${member.userId}`)
      .executeTakeFirst();
    return row === undefined ? undefined : Number(row.count);
  }

  for (const [url, cases] of [
    ["/api/v1/login/code", appCodes],
    ["/api/v1/login/recovery-code", recoveryCodes],
  ] as const) {
    it(`${url}: every malformed body is a 4xx with a clear message, and none counts as an attempt`, async () => {
      const browser = await passwordStep(t, member);
      for (const c of cases) {
        const response = await post(browser, url, c.body);
        expect(response.statusCode, c.name).toBe(400);
        const body = response.json() as { error: string; message: string };
        expect(body.error, c.name).toBe(c.error);
        expect(body.message, c.name).toMatch(c.message);
        expect(body.message.length, c.name).toBeLessThan(200);
        // The input is never echoed back.
        const code = (c.body as { code?: unknown } | null)?.code;
        if (typeof code === "string" && code.trim().length >= 10) expect(response.body, c.name).not.toContain(code.slice(0, 100));
        expect(response.headers["cache-control"], c.name).toContain("no-store");
      }
      expect(await failedAttempts(browser)).toBe(0);
      expect(await userCounter()).toBeUndefined();

      // A well-formed wrong code is a real attempt, and counts.
      const real = await post(browser, url, { code: url.endsWith("recovery-code") ? "abcde-fghjk-mnpqr" : wrongCode(t, member.secret) });
      expect(real.statusCode).toBe(401);
      expect(real.json().error).toBe("invalid_code");
      expect(await failedAttempts(browser)).toBe(1);
      expect(await userCounter()).toBe(1);
      // The right code still works on this challenge (and resets the count).
      const right = await post(browser, url, { code: url.endsWith("recovery-code") ? member.codes.pop() : totpCode(t, member.secret) });
      expect(right.statusCode).toBe(200);
      expect(await userCounter()).toBeUndefined();
      t.clock.advanceSeconds(STEP_SECONDS);
    });
  }

  it("answers bodies that are not JSON at all with a 4xx, never a 5xx", async () => {
    const browser = await passwordStep(t, member);
    for (const url of ["/api/v1/login/code", "/api/v1/login/recovery-code"]) {
      const cases: Array<{ name: string; headers: Record<string, string>; payload: string; status: number; error: string }> = [
        {
          name: "broken JSON",
          headers: { "content-type": "application/json" },
          payload: '{"code": "123',
          status: 400,
          error: "invalid_json",
        },
        { name: "an empty JSON body", headers: { "content-type": "application/json" }, payload: "", status: 400, error: "invalid_json" },
        { name: "text/plain", headers: { "content-type": "text/plain" }, payload: "123456", status: 415, error: "unsupported_media_type" },
        {
          name: "a body over the limit",
          headers: { "content-type": "application/json" },
          payload: JSON.stringify({ code: "1".repeat(70 * 1024) }),
          status: 413,
          error: "payload_too_large",
        },
      ];
      for (const c of cases) {
        const response = await t.app.inject({
          method: "POST",
          url,
          headers: { cookie: browser.cookieHeader(), ...c.headers },
          payload: c.payload,
        });
        expect(response.statusCode, `${url} ${c.name}`).toBe(c.status);
        expect(response.json().error, `${url} ${c.name}`).toBe(c.error);
        expect(response.json().message, `${url} ${c.name}`).toBeTruthy();
      }
    }
    expect(await failedAttempts(browser)).toBe(0);
  });

  it("without a challenge, malformed input is answered as a sign-in that has ended, not a 5xx", async () => {
    for (const url of ["/api/v1/login/code", "/api/v1/login/recovery-code"]) {
      for (const code of ["", "12345", "١٢٣٤٥٦"]) {
        const response = await t.app.inject({
          method: "POST",
          url,
          headers: { "content-type": "application/json" },
          payload: JSON.stringify({ code }),
        });
        expect(response.statusCode).toBe(401);
        expect(response.json().error).toBe("challenge_expired");
        expect(response.json().message).toMatch(/sign in again/i);
      }
      const garbageCookie = await t.app.inject({
        method: "POST",
        url,
        headers: { "content-type": "application/json", cookie: `${CHALLENGE_COOKIE}=${"x".repeat(4000)}` },
        payload: JSON.stringify({ code: "123456" }),
      });
      expect(garbageCookie.statusCode).toBe(401);
      expect(garbageCookie.json().error).toBe("challenge_expired");
    }
  });

  it("the web forms answer malformed codes with the page and a message, without counting them", async () => {
    const browser = new Browser(t.app);
    await browser.signInWithPassword(member.email, member.password);
    for (const [page, action, label] of [
      ["/login/code", "/login/code", /6 digits|6-digit/],
      ["/login/recovery", "/login/recovery", /15 letters and digits/],
    ] as const) {
      const form = await browser.get(page);
      const csrf = csrfFrom(form.body);
      for (const code of ["", "12345", "abcdefg", "١٢٣٤٥٦"]) {
        const response = await browser.request("POST", action, { form: { _csrf: csrf, code } });
        expect(response.statusCode, `${action} ${JSON.stringify(code)}`).toBe(400);
        expect(response.headers["content-type"]).toContain("text/html");
        expect(response.body).toMatch(label);
      }
      const huge = await browser.request("POST", action, { form: { _csrf: csrf, code: TEN_KB } });
      expect(huge.statusCode).toBe(400);
      expect(huge.body).toContain("too long");
      // A repeated field arrives as a list: refused, not a 500.
      const repeated = await t.app.inject({
        method: "POST",
        url: action,
        headers: { cookie: browser.cookieHeader(), "content-type": "application/x-www-form-urlencoded" },
        payload: `_csrf=${encodeURIComponent(csrf)}&code=123456&code=654321`,
      });
      expect(repeated.statusCode).toBe(400);
      const missing = await browser.request("POST", action, { form: { _csrf: csrf } });
      expect(missing.statusCode).toBe(400);
      expect(missing.body).toContain("is required");
    }
    expect(await failedAttempts(browser)).toBe(0);
  });

  it("the setup's confirming step answers malformed codes with a 4xx and a message", async () => {
    const other = await seedMember(t);
    const browser = await signedInBrowser(t, other);
    const manage = await browser.get("/settings/two-factor");
    await browser.request("POST", "/settings/two-factor/setup", { form: { _csrf: csrfFrom(manage.body) } });
    const codesPage = await browser.get("/settings/two-factor/setup");
    await browser.request("POST", "/settings/two-factor/setup/codes-saved", { form: { _csrf: csrfFrom(codesPage.body), saved: "yes" } });
    const scan = await browser.get("/settings/two-factor/setup");
    const csrf = csrfFrom(scan.body);
    for (const code of ["", "12345", "1234567", "abcdef", "１２３４５６"]) {
      const response = await browser.request("POST", "/settings/two-factor/setup/confirm", { form: { _csrf: csrf, code } });
      expect(response.statusCode, JSON.stringify(code)).toBe(400);
      expect(response.body).toMatch(/6 digits|6-digit/);
    }
    const huge = await browser.request("POST", "/settings/two-factor/setup/confirm", { form: { _csrf: csrf, code: TEN_KB } });
    expect(huge.statusCode).toBe(400);
    const user = await t.ctx.db.selectFrom("users").select("two_factor_method").where("id", "=", other.userId).executeTakeFirstOrThrow();
    expect(user.two_factor_method).toBe("email_link");
  });
});
