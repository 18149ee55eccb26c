import { afterAll, beforeAll, expect, it } from "vitest";
import type { LightMyRequestResponse } from "fastify";
import { Browser, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";

/**
 * The security headers are computed once at start-up instead of by @fastify/helmet on every response (issue 10). The
 * page headers are the exact values helmet 13 gave every answer before that change, captured from the app as it was:
 * every kind of answer that is not a JSON API operation (page, redirect, refusals, 404/405, assets, the localhost
 * redirect) must still carry exactly these, no more and no fewer. The API operations' answers (the session check and
 * forward auth among them, refusals included) carry exactly the API set (OWASP REST Security Cheat Sheet; see
 * src/http/security-headers.ts and docs/decisions.md).
 */
const CSP =
  "default-src 'none';base-uri 'none';font-src 'self' https: data:;form-action 'self';frame-ancestors 'none';img-src 'self' data:;object-src 'none';script-src 'self';script-src-attr 'none';style-src 'unsafe-inline'";

const OVER_HTTP: Record<string, string> = {
  "content-security-policy": CSP,
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
  "origin-agent-cluster": "?1",
  "referrer-policy": "same-origin",
  "x-content-type-options": "nosniff",
  "x-dns-prefetch-control": "off",
  "x-download-options": "noopen",
  "x-frame-options": "SAMEORIGIN",
  "x-permitted-cross-domain-policies": "none",
  "x-xss-protection": "0",
};

/** An https public URL adds HSTS and upgrade-insecure-requests. */
const OVER_HTTPS: Record<string, string> = {
  ...OVER_HTTP,
  "content-security-policy": `${CSP};upgrade-insecure-requests`,
  "strict-transport-security": "max-age=31536000; includeSubDomains",
};

/** The API operations' answers: no page-only header, framing denied outright, and still same-origin resources. */
const API_OVER_HTTP: Record<string, string> = {
  "content-security-policy": "default-src 'none';frame-ancestors 'none'",
  "cross-origin-resource-policy": "same-origin",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
};

const API_OVER_HTTPS: Record<string, string> = {
  ...API_OVER_HTTP,
  "strict-transport-security": "max-age=31536000; includeSubDomains",
};

/** The kinds of answer below that come from a JSON API operation. */
const API_KINDS = new Set([
  "the session check",
  "forward auth, signed in",
  "forward auth, refused",
  "an API 401",
  "the OpenAPI document",
  "bad JSON",
]);

/** Headers a response may carry besides the security headers: what the answer itself is about. */
const OTHER_HEADERS = new Set([
  "content-type",
  "content-length",
  "date",
  "connection",
  "keep-alive",
  "cache-control",
  "pragma",
  "location",
  "set-cookie",
  "allow",
  "retry-after",
  "www-authenticate",
  "x-latchkey-user-id",
  "x-latchkey-email",
  "x-latchkey-account-id",
  "x-latchkey-role",
  "x-latchkey-login-url",
  "content-disposition",
  // The request's id (test/request-id.test.ts).
  "x-request-id",
]);

async function everyKindOfAnswer(t: TestApp): Promise<Record<string, LightMyRequestResponse>> {
  const member = await seedMember(t, { role: "admin" });
  const signedIn = await signedInBrowser(t, member);
  const anonymous = new Browser(t.app);
  return {
    "a page": await signedIn.get("/"),
    "the sign-in page": await anonymous.get("/login"),
    "a redirect to sign-in": await anonymous.get("/settings"),
    "the session check": await signedIn.get("/api/v1/session"),
    "forward auth, signed in": await signedIn.get("/api/v1/verify"),
    "forward auth, refused": await anonymous.get("/api/v1/verify"),
    "an API 401": await anonymous.get("/api/v1/session"),
    "a page 404": await anonymous.get("/no-such-page"),
    "an API 404": await anonymous.get("/api/v1/no-such-call"),
    "a 405": await anonymous.request("DELETE", "/login"),
    "an asset": await anonymous.get("/assets/print.js"),
    "the health check": await anonymous.get("/healthz"),
    "the OpenAPI document": await anonymous.get("/api/v1/openapi.json"),
    "a CSRF refusal": await anonymous.request("POST", "/login", { form: { email: "a@example.com", password: "x" } }),
    "bad JSON": await anonymous.request("POST", "/api/v1/login", { headers: { "content-type": "application/json" } }),
    "the redirect from 127.0.0.1": await t.app.inject({ method: "GET", url: "/login", headers: { host: "127.0.0.1:3000" } }),
  };
}

function securityHeadersOf(response: LightMyRequestResponse): Record<string, string> {
  return Object.fromEntries(
    Object.entries(response.headers)
      .filter(([name]) => !OTHER_HEADERS.has(name))
      .map(([name, value]) => [name, String(value)]),
  );
}

describeEachDialect("security headers on every kind of answer", (dialect) => {
  for (const [label, env, pageHeaders, apiHeaders] of [
    ["http public URL", {}, OVER_HTTP, API_OVER_HTTP],
    ["https public URL", { LATCHKEY_PUBLIC_URL: "https://auth.example.com" }, OVER_HTTPS, API_OVER_HTTPS],
  ] as const) {
    let t: TestApp;
    let answers: Record<string, LightMyRequestResponse>;
    let routerRefusal: LightMyRequestResponse;
    beforeAll(async () => {
      t = await startTestApp(dialect, { env });
      answers = await everyKindOfAnswer(t);
      routerRefusal = await t.app.inject({ method: "GET", url: `/invite/${"x".repeat(300)}` });
    });
    afterAll(async () => t?.close());

    it(`every page answer carries exactly the headers helmet gave it, every API answer exactly the API's (${label})`, () => {
      for (const kind of API_KINDS) expect(Object.keys(answers)).toContain(kind);
      for (const [kind, response] of Object.entries(answers)) {
        expect({ kind, status: response.statusCode, headers: securityHeadersOf(response) }).toEqual({
          kind,
          status: response.statusCode,
          headers: API_KINDS.has(kind) ? apiHeaders : pageHeaders,
        });
      }
      // Fastify's own refusals from the router (frameworkErrors) run no hooks, so they never had these headers.
      expect(securityHeadersOf(routerRefusal)).toEqual({});
      // The kinds really are different answers (not one status everywhere).
      expect(new Set(Object.values(answers).map((r) => r.statusCode))).toEqual(
        new Set(label === "https public URL" ? [200, 303, 401, 404, 405, 403, 400] : [200, 303, 308, 401, 404, 405, 403, 400]),
      );
    });
  }
});
