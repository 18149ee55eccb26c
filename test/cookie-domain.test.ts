import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LightMyRequestResponse } from "fastify";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, defaultLimits, loadConfig } from "../src/config.js";
import { Browser, csrfFrom, seedMember, startTestApp, type TestApp } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";

const KEY = randomBytes(32).toString("base64");
const dirs: string[] = [];

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A valid environment (own data dir and key) plus overrides. */
function env(overrides: Record<string, string>): Record<string, string> {
  const dir = mkdtempSync(join(tmpdir(), "latchkey-cookie-domain-"));
  dirs.push(dir);
  return { LATCHKEY_DATA_DIR: dir, LATCHKEY_SECRET_KEY: KEY, ...overrides };
}

function configErrorOf(environment: Record<string, string>): ConfigError {
  try {
    loadConfig(environment);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("expected a ConfigError, but the configuration loaded");
}

describe("LATCHKEY_COOKIE_DOMAIN at start-up", () => {
  it("is unset by default: the session cookie stays host-only", () => {
    expect(loadConfig(env({ LATCHKEY_PUBLIC_URL: "https://auth.example.com" })).cookieDomain).toBeUndefined();
  });

  it.each([
    ["example.com", "https://auth.example.com", "example.com"],
    ["example.com", "https://example.com", "example.com"],
    ["example.com", "https://a.b.auth.example.com:8443", "example.com"],
    ["Example.COM", "https://auth.example.com", "example.com"],
    ["apps.example.co.uk", "https://auth.apps.example.co.uk", "apps.example.co.uk"],
    ["x-1.example.com", "https://auth.x-1.example.com", "x-1.example.com"],
    [`${"a".repeat(63)}.com`, `https://auth.${"a".repeat(63)}.com`, `${"a".repeat(63)}.com`],
  ])("accepts %s with the public URL %s", (domain, publicUrl, expected) => {
    const config = loadConfig(env({ LATCHKEY_COOKIE_DOMAIN: domain, LATCHKEY_PUBLIC_URL: publicUrl }));
    expect(config.cookieDomain).toBe(expected);
  });

  it.each([
    // Not a domain a cookie can name.
    ["com", "https://auth.example.com", /expected a domain like example\.com/],
    ["localhost", "https://localhost", /expected a domain like example\.com/],
    [".example.com", "https://auth.example.com", /expected a domain like example\.com/],
    ["example.com.", "https://auth.example.com", /expected a domain like example\.com/],
    ["https://example.com", "https://auth.example.com", /expected a domain like example\.com/],
    ["example.com:443", "https://auth.example.com", /expected a domain like example\.com/],
    ["example.com/", "https://auth.example.com", /expected a domain like example\.com/],
    ["exa mple.com", "https://auth.example.com", /expected a domain like example\.com/],
    ["-example.com", "https://auth.example.com", /expected a domain like example\.com/],
    ["example-.com", "https://auth.example.com", /expected a domain like example\.com/],
    ["example..com", "https://auth.example.com", /expected a domain like example\.com/],
    ["exämple.com", "https://auth.example.com", /expected a domain like example\.com/],
    [`${"a".repeat(64)}.com`, `https://auth.${"a".repeat(63)}.com`, /expected a domain like example\.com/],
    ["127.0.0.1", "https://127.0.0.1", /expected a domain like example\.com/],
    ["example.123", "https://auth.example.com", /expected a domain like example\.com/],
    // The public URL's host must be the domain or under it, or browsers drop the cookie.
    [
      "example.com",
      "https://auth.badexample.com",
      /LATCHKEY_PUBLIC_URL's host auth\.badexample\.com is not example\.com or a subdomain of it/,
    ],
    ["example.com", "https://example.com.evil.net", /is not example\.com or a subdomain of it/],
    ["auth.example.com", "https://example.com", /is not auth\.example\.com or a subdomain of it/],
    ["example.org", "https://auth.example.com", /is not example\.org or a subdomain of it/],
    // A cookie for every subdomain must be Secure: plain http is refused.
    ["example.com", "http://auth.example.com", /needs an https LATCHKEY_PUBLIC_URL/],
  ])("refuses %s with the public URL %s, naming the variable", (domain, publicUrl, message) => {
    const error = configErrorOf(env({ LATCHKEY_COOKIE_DOMAIN: domain, LATCHKEY_PUBLIC_URL: publicUrl }));
    expect(error.variable).toBe("LATCHKEY_COOKIE_DOMAIN");
    expect(error.message.startsWith("LATCHKEY_COOKIE_DOMAIN: ")).toBe(true);
    expect(error.message).not.toContain("\n");
    expect(error.message).toMatch(message);
  });

  it("refuses it with the default public URL (http://localhost)", () => {
    expect(configErrorOf(env({ LATCHKEY_COOKIE_DOMAIN: "example.com" })).variable).toBe("LATCHKEY_COOKIE_DOMAIN");
  });
});

/** Every Set-Cookie line of a response. */
function setCookieLines(response: LightMyRequestResponse): string[] {
  const header = response.headers["set-cookie"];
  return header === undefined ? [] : Array.isArray(header) ? header : [header];
}

/** The raw Set-Cookie line for `name`. */
function setCookieLine(response: LightMyRequestResponse, name: string): string | undefined {
  return setCookieLines(response).find((line) => line.startsWith(`${name}=`));
}

function attributes(line: string | undefined): string[] {
  if (line === undefined) throw new Error("no such Set-Cookie line");
  return line
    .split(";")
    .slice(1)
    .map((a) => a.trim().toLowerCase());
}

/** Password and email link through the web forms; the responses of both steps. */
async function signIn(t: TestApp): Promise<{ browser: Browser; step: LightMyRequestResponse; linked: LightMyRequestResponse }> {
  const member = await seedMember(t);
  const browser = new Browser(t.app);
  const step = await browser.signInWithPassword(member.email, member.password);
  expect(step.statusCode).toBe(303);
  const linked = await browser.get(t.mail.lastLink(member.email));
  expect(linked.statusCode).toBe(303);
  return { browser, step, linked };
}

const WIDE = "__Secure-latchkey_session";

describeEachDialect("the session cookie with LATCHKEY_COOKIE_DOMAIN", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect, { env: { LATCHKEY_PUBLIC_URL: "https://auth.example.com", LATCHKEY_COOKIE_DOMAIN: "example.com" } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it("is __Secure-latchkey_session with Domain=example.com, Secure, HttpOnly, SameSite=Lax and Path=/", async () => {
    const { linked } = await signIn(t);
    const attrs = attributes(setCookieLine(linked, WIDE));
    expect(attrs).toEqual(
      expect.arrayContaining([
        "domain=example.com",
        "secure",
        "httponly",
        "samesite=lax",
        "path=/",
        `max-age=${defaultLimits.sessionAbsoluteTimeoutSeconds}`,
      ]),
    );
    expect(setCookieLine(linked, "__Host-latchkey_session")).toBeUndefined();
    expect(setCookieLine(linked, "latchkey_session")).toBeUndefined();
  });

  it("leaves the challenge, CSRF and device cookies host-only with the __Host- prefix", async () => {
    const { step, linked } = await signIn(t);
    const hostOnly = [
      setCookieLine(step, "__Host-latchkey_challenge"),
      setCookieLine(step, "__Host-latchkey_csrf") ?? "",
      setCookieLine(linked, "__Host-latchkey_device"),
    ];
    // The CSRF cookie came with the sign-in page, before the password step.
    const page = await new Browser(t.app).get("/login");
    hostOnly[1] = setCookieLine(page, "__Host-latchkey_csrf");
    for (const line of hostOnly) {
      const attrs = attributes(line);
      expect(attrs).toContain("secure");
      expect(attrs).toContain("path=/");
      expect(attrs.some((a) => a.startsWith("domain="))).toBe(false);
    }
    for (const response of [step, linked, page]) {
      expect(
        setCookieLines(response)
          .filter((l) => /domain=/i.test(l))
          .every((l) => l.startsWith(`${WIDE}=`)),
      ).toBe(true);
    }
  });

  it("is the cookie that signs the person in, whichever subdomain the request names; a __Host- copy of it is ignored", async () => {
    const { browser } = await signIn(t);
    const token = browser.cookies.get(WIDE) as string;
    for (const host of ["auth.example.com", "app.example.com"]) {
      const verify = await t.app.inject({ method: "GET", url: "/api/v1/verify", headers: { host, cookie: `${WIDE}=${token}` } });
      expect(verify.statusCode).toBe(200);
    }
    const hostOnly = await t.app.inject({ method: "GET", url: "/api/v1/verify", headers: { cookie: `__Host-latchkey_session=${token}` } });
    expect(hostOnly.statusCode).toBe(401);
  });

  it("is cleared with Domain=example.com by the sign-out form, and the session is over", async () => {
    const { browser } = await signIn(t);
    const token = browser.cookies.get(WIDE) as string;
    const csrf = csrfFrom((await browser.get("/settings")).body);
    const out = await browser.request("POST", "/logout", { form: { _csrf: csrf } });
    expect(out.statusCode).toBe(303);
    const attrs = attributes(setCookieLine(out, WIDE));
    expect(setCookieLine(out, WIDE)).toMatch(new RegExp(`^${WIDE}=;`));
    expect(attrs).toContain("domain=example.com");
    expect(attrs).toContain("path=/");
    expect(attrs).toContain("secure");
    expect(attrs.some((a) => a === "max-age=0" || a === "expires=thu, 01 jan 1970 00:00:00 gmt")).toBe(true);
    const after = await t.app.inject({ method: "GET", url: "/api/v1/verify", headers: { cookie: `${WIDE}=${token}` } });
    expect(after.statusCode).toBe(401);
  });

  it("is cleared with Domain=example.com by POST /api/v1/logout and when it names a dead session", async () => {
    const { browser } = await signIn(t);
    const token = browser.cookies.get(WIDE) as string;
    const out = await browser.request("POST", "/api/v1/logout", { json: {} });
    expect(out.statusCode).toBe(204);
    expect(attributes(setCookieLine(out, WIDE))).toContain("domain=example.com");
    expect(setCookieLine(out, WIDE)).toMatch(new RegExp(`^${WIDE}=;`));
    // A client that kept the cookie is told to drop it, on the same domain.
    const stale = await t.app.inject({ method: "GET", url: "/api/v1/session", headers: { cookie: `${WIDE}=${token}` } });
    expect(stale.statusCode).toBe(401);
    expect(setCookieLine(stale, WIDE)).toMatch(new RegExp(`^${WIDE}=;`));
    expect(attributes(setCookieLine(stale, WIDE))).toContain("domain=example.com");
  });
});

describeEachDialect("the session cookie without LATCHKEY_COOKIE_DOMAIN", (dialect) => {
  for (const [publicUrl, name, secure] of [
    ["https://auth.example.com", "__Host-latchkey_session", true],
    ["http://localhost:3000", "latchkey_session", false],
  ] as const) {
    it(`is ${name} without Domain under ${publicUrl}, and sign-out clears it`, async () => {
      const t = await startTestApp(dialect, { env: { LATCHKEY_PUBLIC_URL: publicUrl } });
      try {
        const { browser, linked } = await signIn(t);
        const attrs = attributes(setCookieLine(linked, name));
        expect(attrs.some((a) => a.startsWith("domain="))).toBe(false);
        expect(attrs.includes("secure")).toBe(secure);
        expect(setCookieLine(linked, WIDE)).toBeUndefined();
        const out = await browser.request("POST", "/api/v1/logout", { json: {} });
        expect(setCookieLine(out, name)).toMatch(new RegExp(`^${name}=;`));
        expect(attributes(setCookieLine(out, name)).some((a) => a.startsWith("domain="))).toBe(false);
      } finally {
        await t.close();
      }
    });
  }
});
