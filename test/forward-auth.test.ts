import { afterAll, beforeAll, expect, it } from "vitest";
import { seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";

const LOGIN_URL = "x-latchkey-login-url";

/** What the proxies send with the forward-auth request: the URL the browser asked them for, in three parts. */
function forwarded(proto: string, host: string, uri: string): Record<string, string> {
  return { "x-forwarded-proto": proto, "x-forwarded-host": host, "x-forwarded-uri": uri };
}

describeEachDialect("forward auth tells the proxy where to send a browser that is not signed in", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect, { env: { LATCHKEY_PUBLIC_URL: "https://auth.example.com" } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it("a 401 names Latchkey's sign-in page with return_to = the original URL, escaped so it survives as one parameter", async () => {
    // `&`, `+`, `%`, `=` and `?` in the original query must come back unchanged: no proxy can escape them itself.
    const original = "https://app.example.com:8443/reports/q3?q=a%26b&x=1+2&y=%2B&z=é";
    const uri = "/reports/q3?q=a%26b&x=1+2&y=%2B&z=%C3%A9";
    const response = await t.app.inject({ method: "GET", url: "/api/v1/verify", headers: forwarded("https", "app.example.com:8443", uri) });
    expect(response.statusCode).toBe(401);
    expect(response.json().error).toBe("unauthenticated");
    const loginUrl = new URL(response.headers[LOGIN_URL] as string);
    expect(loginUrl.origin + loginUrl.pathname).toBe("https://auth.example.com/login");
    expect([...loginUrl.searchParams.keys()]).toEqual(["return_to"]);
    expect(loginUrl.searchParams.get("return_to")).toBe(new URL(original).href);
    expect(response.headers[LOGIN_URL]).toBe(
      `https://auth.example.com/login?return_to=${encodeURIComponent(`https://app.example.com:8443${uri}`)}`,
    );
  });

  it("keeps a plain http original and a root path as they are", async () => {
    const response = await t.app.inject({ method: "GET", url: "/api/v1/verify", headers: forwarded("http", "intranet.example.com", "/") });
    expect(response.headers[LOGIN_URL]).toBe(
      `https://auth.example.com/login?return_to=${encodeURIComponent("http://intranet.example.com/")}`,
    );
  });

  it("without the forwarded headers, names the sign-in page alone", async () => {
    const response = await t.app.inject({ method: "GET", url: "/api/v1/verify" });
    expect(response.statusCode).toBe(401);
    expect(response.headers[LOGIN_URL]).toBe("https://auth.example.com/login");
  });

  it.each([
    ["a scheme other than http or https", forwarded("javascript", "app.example.com", "/")],
    ["a host with a path", forwarded("https", "app.example.com/evil", "/")],
    ["a host with userinfo", forwarded("https", "user@evil.example", "/")],
    ["a host list from several proxies", forwarded("https", "app.example.com, evil.example", "/")],
    ["a host with a space", forwarded("https", "app example.com", "/")],
    ["an empty host", forwarded("https", "", "/")],
    ["a path without its leading slash", forwarded("https", "app.example.com", "reports")],
    ["a path naming another host", forwarded("https", "app.example.com", "//evil.example/")],
    ["a path naming another host with a backslash", forwarded("https", "app.example.com", "/\\evil.example/")],
    ["a missing path", { "x-forwarded-proto": "https", "x-forwarded-host": "app.example.com" }],
  ])("with %s, names the sign-in page without return_to", async (_case, headers) => {
    const response = await t.app.inject({ method: "GET", url: "/api/v1/verify", headers });
    expect(response.statusCode).toBe(401);
    expect(response.headers[LOGIN_URL]).toBe("https://auth.example.com/login");
  });

  it("a signed-in request gets its 200 and identity headers, and no sign-in URL", async () => {
    const member = await seedMember(t);
    const browser = await signedInBrowser(t, member);
    const response = await browser.get("/api/v1/verify", forwarded("https", "app.example.com", "/reports"));
    expect(response.statusCode).toBe(200);
    expect(response.headers["x-latchkey-email"]).toBe(member.email);
    expect(response.headers[LOGIN_URL]).toBeUndefined();
  });
});
