import type { FastifyReply, FastifyRequest } from "fastify";
import type { Config } from "../config.js";
import { LatchkeyError } from "../errors.js";
import { constantTimeEqual, newToken, sign } from "../auth/tokens.js";
import { isApiRequest } from "./errors.js";
import { readCookie, setCookie } from "./cookies.js";
import { routeConfigOf } from "./route-config.js";

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
const CSRF_PURPOSE = "csrf-form";

/**
 * The form token for this browser: an HMAC of its random CSRF cookie under the secret key (signed double submit).
 * A cross-site page can make the browser send the cookie, but cannot read it or compute the token.
 */
export function csrfToken(request: FastifyRequest, reply: FastifyReply, config: Config): string {
  let value = readCookie(request, config, "csrf") ?? request.csrfCookieIssued;
  if (value === undefined) {
    value = newToken();
    request.csrfCookieIssued = value;
    setCookie(reply, config, "csrf", value);
  }
  return sign(config.secretKey, CSRF_PURPOSE, value);
}

function originProblem(request: FastifyRequest, config: Config): string | null {
  const fetchSite = request.headers["sec-fetch-site"];
  if (typeof fetchSite === "string" && fetchSite !== "same-origin" && fetchSite !== "none") {
    return `This request came from another site (Sec-Fetch-Site: ${fetchSite}) and was refused.`;
  }
  const origin = request.headers.origin;
  if (typeof origin === "string" && origin !== "null" && origin !== config.publicUrl.origin) {
    return `This request came from ${origin}, but ${config.productName} only accepts requests from ${config.publicUrl.origin} (LATCHKEY_PUBLIC_URL).`;
  }
  if (origin === "null") return "This request came from an opaque origin and was refused.";
  return null;
}

/**
 * Checks every state-changing request. API calls: Origin and Sec-Fetch-Site must be ours when a browser sends them
 * (programs send neither), and the body must be JSON, which a cross-site form cannot send without a CORS preflight.
 * Forms: the same origin checks, plus the signed double-submit token.
 */
export function checkCsrf(request: FastifyRequest, config: Config): void {
  if (SAFE_METHODS.has(request.method)) return;
  // Operator routes read no cookie, only the Authorization header, which a cross-site page cannot make a browser send:
  // there is nothing for a forged request to ride on, so where the call comes from does not matter. Decided by the
  // route, never by the request: a bearer header on any other route leaves this check as it is.
  const bearerOnly = routeConfigOf(request).access === "operator";
  const problem = bearerOnly ? null : originProblem(request, config);
  if (problem !== null) throw new LatchkeyError("csrf_invalid", problem);
  if (isApiRequest(request)) {
    const type = request.headers["content-type"];
    if (type !== undefined && !/^application\/json\b/i.test(type)) {
      throw new LatchkeyError("unsupported_media_type", "The API accepts only JSON: send Content-Type: application/json.");
    }
    return;
  }
  const cookie = readCookie(request, config, "csrf");
  const body = request.body as Record<string, unknown> | undefined;
  const submitted = body && typeof body === "object" ? body["_csrf"] : undefined;
  if (
    cookie === undefined ||
    typeof submitted !== "string" ||
    !constantTimeEqual(submitted, sign(config.secretKey, CSRF_PURPOSE, cookie))
  ) {
    throw new LatchkeyError("csrf_invalid", "This form has expired or was sent from another site. Go back, reload the page and try again.");
  }
}

declare module "fastify" {
  interface FastifyRequest {
    /** A CSRF cookie value set during this request (the browser does not have it yet). */
    csrfCookieIssued: string | undefined;
  }
}
