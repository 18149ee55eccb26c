import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, expect, it } from "vitest";
import { errorCodes } from "../src/errors.js";
import { newId } from "../src/auth/tokens.js";
import { Browser, csrfFrom, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";

/**
 * Security review, issue 7, F4: a forged audit cursor reached PostgreSQL as an out-of-range bigint and came back as a
 * 500. This sweeps every query and path parameter that reaches SQL with values out of range or out of shape, as an
 * Account Admin, on both dialects: each is a 4xx with a clear message (JSON with a stable code on the API), never a
 * 5xx. Path parameters are taken from the app's own routes, so a route added later is swept too.
 */

type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

const id = (): string => newId();
const cursorOf = (text: string): string => Buffer.from(text, "utf8").toString("base64url");

/** Path segments, already percent-encoded as they would arrive: numbers out of range, floats, NUL, huge, not ids. */
const HOSTILE_SEGMENTS = [
  "0",
  "-1",
  "1.5",
  "1e308",
  "99999999999999999999999999",
  "9223372036854775808",
  "-9223372036854775809",
  "NaN",
  "%00",
  "a%00b",
  "x".repeat(199),
  "x".repeat(5000),
  "A".repeat(32),
  "f".repeat(31),
  "f".repeat(33),
  "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
  "'%20OR%201%3D1--",
  "%C3%A9",
  "%F0%9F%94%91",
  "%ff",
  "%",
];

/** Query values (percent-encoded by the test): the same, plus forged cursors of every kind. */
const HOSTILE_VALUES = [
  "0",
  "-1",
  "1.5",
  "1e308",
  "99999999999999999999999999",
  "9223372036854775808",
  "NaN",
  "\u0000",
  "a\u0000b",
  "x".repeat(10_000),
  "A".repeat(32),
  "'; drop table users; --",
  "é",
];

const FORGED_CURSORS = [
  cursorOf(`99999999999999999999:${"f".repeat(32)}`),
  cursorOf(`9223372036854775808:${"f".repeat(32)}`),
  cursorOf(`9223372036854775807:${"f".repeat(32)}`),
  cursorOf(`${"9".repeat(400)}:${"f".repeat(32)}`),
  cursorOf(`-1:${"f".repeat(32)}`),
  cursorOf(`1.5:${"f".repeat(32)}`),
  cursorOf(`1e21:${"f".repeat(32)}`),
  cursorOf(`1:${"f".repeat(32)}:extra`),
  cursorOf(`1:${"F".repeat(32)}`),
  cursorOf(`\u0000:${"f".repeat(32)}`),
  cursorOf(`1:${"f".repeat(31)}\u0000`),
  cursorOf(":"),
  "%00",
  "x".repeat(201),
];

/** Dates out of what the database's integers and JavaScript's dates can hold, and out of shape. */
const HOSTILE_DATES = [
  "+275760-09-13T00:00:00.000Z",
  "-271821-04-20T00:00:00.000Z",
  "+275760-09-14",
  "9999-12-31",
  "0000-01-01",
  "1e400",
  "99999999999999999999",
  "2026-01-01\u0000",
  "2026-02-31",
];

describeEachDialect("out-of-range parameters", (dialect) => {
  let t: TestApp;
  let admin: Browser;
  beforeAll(async () => {
    t = await startTestApp(dialect);
    const seeded = await seedMember(t, { role: "admin", accountName: "Params" });
    admin = await signedInBrowser(t, seeded);
    // A second page of audit events exists, so a cursor is really applied.
    for (let i = 0; i < 3; i++)
      await admin.request("POST", "/api/v1/team/invitations", { json: { email: `p${i}-${id().slice(0, 6)}@example.com`, role: "member" } });
  });
  afterAll(async () => {
    await t?.close();
  });

  /** Never a 5xx; on the API, a JSON error with a stable code and a message a person can read. */
  function expectClearRefusal(what: string, response: LightMyRequestResponse, api: boolean): void {
    const where = `${what}: ${response.statusCode} ${response.body.slice(0, 300)}`;
    expect(response.statusCode, where).toBeLessThan(500);
    if (!api || response.statusCode < 400) return;
    expect(response.headers["content-type"], where).toMatch(/application\/json/);
    const body = response.json<{ error: string; message: string }>();
    expect(errorCodes, where).toContain(body.error);
    expect(body.message.length, where).toBeGreaterThan(10);
  }

  async function send(browser: Browser, method: Method, url: string, fields: Record<string, unknown>): Promise<LightMyRequestResponse> {
    if (method === "GET") return browser.get(url);
    if (url.startsWith("/api/")) return browser.request(method, url, method === "DELETE" ? {} : { json: fields });
    const csrf = csrfFrom((await browser.get("/settings/profile")).body);
    return browser.request(method, url, {
      form: { _csrf: csrf, ...(Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, String(v)])) as Record<string, string>) },
    });
  }

  it('a forged audit cursor is 400 invalid_request naming "cursor", on the API and the page', async () => {
    // A cursor the server made still works (the check refuses only what it did not make).
    const first = (await admin.get("/api/v1/audit?limit=1")).json<{ nextCursor: string | null }>();
    expect(first.nextCursor).toBeTruthy();
    expect((await admin.get(`/api/v1/audit?limit=1&cursor=${first.nextCursor}`)).statusCode).toBe(200);
    for (const cursor of FORGED_CURSORS) {
      const query = `cursor=${encodeURIComponent(cursor)}`;
      const api = await admin.get(`/api/v1/audit?${query}`);
      expect(api.statusCode, `${cursor}: ${api.body.slice(0, 300)}`).toBe(400);
      expect(api.json<{ error: string }>().error).toBe("invalid_request");
      expect(api.json<{ message: string }>().message).toContain('"cursor"');
      const page = await admin.get(`/settings/audit?${query}`);
      expect(page.statusCode, `page ${cursor}: ${page.body.slice(0, 300)}`).toBe(400);
    }
  });

  it("every query parameter that reaches SQL answers out-of-range and malformed values with a 4xx, never a 5xx", async () => {
    const table: Array<{ path: string; param: string; values: string[] }> = [
      ...["/api/v1/audit", "/settings/audit"].flatMap((path) => [
        { path, param: "cursor", values: [...HOSTILE_VALUES, ...FORGED_CURSORS] },
        { path, param: "member", values: HOSTILE_VALUES },
        { path, param: "event", values: [...HOSTILE_VALUES, "sign_in.", "%", "_", "!", "a".repeat(64)] },
        { path, param: "from", values: [...HOSTILE_VALUES, ...HOSTILE_DATES] },
        { path, param: "to", values: [...HOSTILE_VALUES, ...HOSTILE_DATES] },
        { path, param: "limit", values: [...HOSTILE_VALUES, "000", "999", "1000"] },
      ]),
      ...["code", "state", "iss", "error"].map((param) => ({ path: "/sso/callback", param, values: HOSTILE_VALUES })),
      ...["/settings/team", "/settings/security", "/settings/two-factor", "/login"].map((path) => ({
        path,
        param: "notice",
        values: HOSTILE_VALUES,
      })),
    ];
    for (const { path, param, values } of table) {
      for (const value of values) {
        const url = `${path}?${param}=${encodeURIComponent(value)}`;
        expectClearRefusal(`GET ${path}?${param}=${JSON.stringify(value.slice(0, 40))}`, await admin.get(url), path.startsWith("/api/"));
      }
      // A repeated parameter arrives as an array.
      expectClearRefusal(`GET ${path}?${param}=1&${param}=2`, await admin.get(`${path}?${param}=1&${param}=2`), path.startsWith("/api/"));
    }
    expect((await admin.get("/api/v1/session")).statusCode).toBe(200);
  });

  it("every path parameter of every route answers out-of-range and malformed values with a 4xx, never a 5xx", async () => {
    const routes = [...new Set(t.app.latchkeyRoutes)].filter((route) => route.includes("/:"));
    // The collector found the routes of the sweep (a broken collector must not make this pass).
    for (const known of [
      "PATCH /api/v1/team/members/:userId",
      "DELETE /api/v1/team/invitations/:id",
      "GET /invite/:token",
      "POST /settings/team/members/:userId/role",
    ]) {
      expect(routes).toContain(known);
    }
    const fields = {
      role: "member",
      name: "Someone",
      password: "correct horse battery staple",
      accountName: "X",
      email: "x@example.com",
      message: "",
    };
    for (const route of routes) {
      const [method, pattern] = route.split(" ") as [Method, string];
      for (const segment of HOSTILE_SEGMENTS) {
        const url = pattern.replace(/:[A-Za-z]+/g, segment);
        expectClearRefusal(`${method} ${url.slice(0, 120)}`, await send(admin, method, url, fields), url.startsWith("/api/"));
      }
    }
    expect((await admin.get("/api/v1/session")).statusCode).toBe(200);
  });

  it("a path part over the router's length limit, or a broken %-escape, is 400 invalid_request in our format", async () => {
    for (const segment of ["x".repeat(5000), "%ff", "%", "%E0%A4%A"]) {
      const api = await admin.request("DELETE", `/api/v1/team/invitations/${segment}`);
      expect(api.statusCode, `${segment.slice(0, 20)}: ${api.body.slice(0, 200)}`).toBe(400);
      expect(api.json()).toEqual({ error: "invalid_request", message: expect.stringMatching(/^This address is not valid: /) });
      // A person opening a mangled link gets a page, not JSON.
      const page = await admin.get(`/invite/${segment}`);
      expect(page.statusCode, segment.slice(0, 20)).toBe(400);
      expect(page.headers["content-type"], segment.slice(0, 20)).toMatch(/text\/html/);
      expect(page.body).toContain("This address is not valid");
    }
  });

  it("account ids and domains in bodies (switch account, SSO start) answer out-of-range and malformed values with a 4xx", async () => {
    const values: unknown[] = [...HOSTILE_VALUES, 0, -1, 1.5, 1e308, -1e308, null, true, [], {}, ["a"], id().toUpperCase()];
    for (const value of values) {
      const what = JSON.stringify(value)?.slice(0, 40);
      expectClearRefusal(
        `POST /api/v1/session/account ${what}`,
        await admin.request("POST", "/api/v1/session/account", { json: { accountId: value } }),
        true,
      );
      expectClearRefusal(
        `POST /api/v1/login/sso ${what}`,
        await new Browser(t.app).request("POST", "/api/v1/login/sso", { json: { domain: value } }),
        true,
      );
      if (typeof value === "string") {
        expectClearRefusal(`POST /accounts/switch ${what}`, await send(admin, "POST", "/accounts/switch", { accountId: value }), false);
        const anonymous = new Browser(t.app);
        const page = await anonymous.get("/login/sso");
        expectClearRefusal(
          `POST /login/sso ${what}`,
          await anonymous.request("POST", "/login/sso", { form: { _csrf: csrfFrom(page.body), domain: value } }),
          false,
        );
      }
    }
    expect((await admin.get("/api/v1/session")).statusCode).toBe(200);
  });
});
