import type { FastifyInstance } from "fastify";
import type { Config } from "../config.js";

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
  if (config.secureCookies) headers.push(["Strict-Transport-Security", "max-age=31536000; includeSubDomains"]);
  headers.push(
    ["X-Content-Type-Options", "nosniff"],
    ["X-DNS-Prefetch-Control", "off"],
    ["X-Download-Options", "noopen"],
    ["X-Frame-Options", "SAMEORIGIN"],
    ["X-Permitted-Cross-Domain-Policies", "none"],
    // 0 turns off the old browsers' XSS auditor, which itself could be abused to leak page content.
    ["X-XSS-Protection", "0"],
  );
  return Object.freeze(headers.map((pair) => Object.freeze(pair)));
}

/**
 * Sets the security headers on every answer that goes through the request hooks, as the first `onRequest` hook (where
 * helmet set them), so redirects, refusals and errors carry them too. A plain callback hook: no promise per request.
 */
export function registerSecurityHeaders(app: FastifyInstance, config: Config): void {
  const headers = securityHeaders(config);
  app.addHook("onRequest", (_request, reply, done) => {
    const raw = reply.raw;
    for (const [name, value] of headers) raw.setHeader(name, value);
    done();
  });
}
