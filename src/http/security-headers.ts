import type { FastifyInstance } from "fastify";
import type { Config } from "../config.js";
import { routeConfigOf } from "./route-config.js";

/**
 * The Content-Security-Policy of every answer: the pages load nothing from elsewhere, run only our own scripts
 * (`/assets/*.js`), use inline styles, and may not be framed or post forms to other origins.
 */
function contentSecurityPolicy(config: Config): string {
  const directives = [
    "default-src 'none'",
    "base-uri 'none'",
    "font-src 'self' https: data:",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "img-src 'self' data:",
    "object-src 'none'",
    "script-src 'self'",
    "script-src-attr 'none'",
    "style-src 'unsafe-inline'",
  ];
  if (config.secureCookies) directives.push("upgrade-insecure-requests");
  return directives.join(";");
}

/** Strict-Transport-Security, for both kinds of answer when the public URL is https. */
const HSTS = ["Strict-Transport-Security", "max-age=31536000; includeSubDomains"] as const;

function frozen(headers: Array<readonly [string, string]>): ReadonlyArray<readonly [string, string]> {
  return Object.freeze(headers.map((pair) => Object.freeze(pair)));
}

/**
 * The security headers of every answer, computed once at start-up. They are the headers @fastify/helmet 13 (helmet
 * 8) gave with our options, in its order and spelling, but helmet rebuilt them (parsing the CSP directives again) on
 * every response: about a tenth of the session check's time (issue 10). test/security-headers.test.ts pins the values.
 */
export function securityHeaders(config: Config): ReadonlyArray<readonly [string, string]> {
  const headers: Array<readonly [string, string]> = [
    ["Content-Security-Policy", contentSecurityPolicy(config)],
    ["Cross-Origin-Opener-Policy", "same-origin"],
    ["Cross-Origin-Resource-Policy", "same-origin"],
    ["Origin-Agent-Cluster", "?1"],
    // same-origin, not no-referrer: under no-referrer browsers send `Origin: null` on form POSTs, which the CSRF check
    // refuses. Other origins still get no Referer, so no token in a URL leaks.
    ["Referrer-Policy", "same-origin"],
  ];
  // HSTS only when the public URL is https: over http it means nothing, and on localhost it would stick to the name.
  if (config.secureCookies) headers.push(HSTS);
  headers.push(
    ["X-Content-Type-Options", "nosniff"],
    ["X-DNS-Prefetch-Control", "off"],
    ["X-Download-Options", "noopen"],
    ["X-Frame-Options", "SAMEORIGIN"],
    ["X-Permitted-Cross-Domain-Policies", "none"],
    // 0 turns off the old browsers' XSS auditor, which itself could be abused to leak page content.
    ["X-XSS-Protection", "0"],
  );
  return frozen(headers);
}

/**
 * The security headers of a JSON API answer (`/api/v1/*` operations, forward auth among them), computed once: what
 * OWASP's REST Security Cheat Sheet asks of an API — no framing (CSP `frame-ancestors 'none'` and X-Frame-Options
 * DENY), no sniffing, nothing loaded if the answer is ever opened as a document (`default-src 'none'`), HSTS over https
 * — and Cross-Origin-Resource-Policy, so no other site can pull a person's session JSON into its process with a
 * no-cors request. The page headers that only mean something for an HTML document (COOP, Origin-Agent-Cluster, the
 * script and style sources, the DNS-prefetch, download and cross-domain-policy switches, the old XSS auditor) are
 * left out: the session check and forward auth answer on every request of the protected app, and those 700 bytes of
 * headers were about a twentieth of their cost (issue 10; docs/decisions.md).
 */
export function apiSecurityHeaders(config: Config): ReadonlyArray<readonly [string, string]> {
  const headers: Array<readonly [string, string]> = [
    ["Content-Security-Policy", "default-src 'none';frame-ancestors 'none'"],
    ["Cross-Origin-Resource-Policy", "same-origin"],
  ];
  if (config.secureCookies) headers.push(HSTS);
  headers.push(["X-Content-Type-Options", "nosniff"], ["X-Frame-Options", "DENY"]);
  return frozen(headers);
}

declare module "fastify" {
  interface FastifyContextConfig {
    /** A JSON API operation (declared with `apiRoute`): its answers carry the API's security headers. */
    api?: boolean;
  }
}

/**
 * Sets the security headers on every answer that goes through the request hooks, as the first `onRequest` hook (where
 * helmet set them), so redirects, refusals and errors carry them too: the API's on an API operation's answers, the
 * pages' on everything else (a request no route takes included). A plain callback hook: no promise per request.
 */
export function registerSecurityHeaders(app: FastifyInstance, config: Config): void {
  const pages = securityHeaders(config);
  const api = apiSecurityHeaders(config);
  app.addHook("onRequest", (request, reply, done) => {
    const raw = reply.raw;
    for (const [name, value] of routeConfigOf(request).api === true ? api : pages) raw.setHeader(name, value);
    done();
  });
}
