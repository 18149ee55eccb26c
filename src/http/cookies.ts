import type { FastifyReply, FastifyRequest } from "fastify";
import type { CookieSerializeOptions } from "@fastify/cookie";
import type { Config } from "../config.js";
import { pathTo } from "../paths.js";

/**
 * `sso`: binds a single sign-on in flight to the browser that started it (like the challenge cookie for the email link).
 * `device`: the signed device cookie of a browser that completed a password sign-in (`src/auth/devices.ts`).
 * `return`: the signed, short-lived `return_to` of a sign-in in progress (`src/http/return-to.ts`). Only Latchkey
 * reads it: it stays host-only whatever other cookies do.
 * `login_hint`: the signed, short-lived email the sign-in page fills in after a password was set (`src/http/login-hint.ts`).
 */
export type CookieKind = "session" | "challenge" | "csrf" | "sso" | "device" | "return" | "login_hint";

/**
 * The one cookie that may go to other hosts: the session, and only with `LATCHKEY_COOKIE_DOMAIN`, so apps on sibling
 * subdomains can be guarded by forward auth. The sign-in in progress (challenge, sso), the CSRF cookie and the device
 * cookie are only ever read by Latchkey itself, so they stay host-only.
 */
function domainOf(config: Config, kind: CookieKind): string | undefined {
  return kind === "session" ? config.cookieDomain : undefined;
}

/**
 * Cookie names: with an https public URL every cookie gets `Secure` and the `__Host-` prefix, which the browser only
 * accepts from a secure origin with Path=/ and no Domain — so no subdomain can plant or overwrite it. A session cookie
 * with a Domain cannot be `__Host-`; it is `__Secure-` instead (https only, but any host under the domain can set it:
 * the trade-off in docs/decisions.md). Config guarantees https whenever there is a cookie domain.
 */
export function cookieName(config: Config, kind: CookieKind): string {
  if (domainOf(config, kind) !== undefined) return `__Secure-latchkey_${kind}`;
  return `${config.secureCookies ? "__Host-" : ""}latchkey_${kind}`;
}

export function cookieOptions(config: Config, kind: CookieKind, maxAgeSeconds?: number): CookieSerializeOptions {
  const domain = domainOf(config, kind);
  return {
    path: "/",
    httpOnly: true,
    // Lax: the cookie rides along when a person opens the emailed link (a top-level navigation from their mail), but
    // not on cross-site subrequests or POSTs.
    sameSite: "lax",
    secure: config.secureCookies,
    // Clearing must name the same Domain as setting, or the browser keeps the wide cookie: every caller goes through here.
    ...(domain !== undefined ? { domain } : {}),
    ...(maxAgeSeconds !== undefined ? { maxAge: maxAgeSeconds } : {}),
  };
}

export function readCookie(request: FastifyRequest, config: Config, kind: CookieKind): string | undefined {
  return request.cookies[cookieName(config, kind)];
}

export function setCookie(reply: FastifyReply, config: Config, kind: CookieKind, value: string, maxAgeSeconds?: number): void {
  reply.setCookie(cookieName(config, kind), value, cookieOptions(config, kind, maxAgeSeconds));
}

export function clearCookie(reply: FastifyReply, config: Config, kind: CookieKind): void {
  reply.clearCookie(cookieName(config, kind), cookieOptions(config, kind));
}

/**
 * The device cookie: long-lived (it outlives sessions and sign-out: it is what makes the browser known), HttpOnly,
 * SameSite=Lax, and under https `Secure` with the `__Host-` prefix like every other cookie.
 */
export function setDeviceCookie(reply: FastifyReply, config: Config, deviceToken: string): void {
  setCookie(reply, config, "device", deviceToken, config.limits.deviceCookieMaxAgeSeconds);
}

/**
 * The end of every sign-in path: the half-finished sign-in's cookie goes, the new session's cookie comes (for its
 * absolute lifetime), and after a password sign-in the browser's device cookie (renewed on each one).
 */
export function setSessionCookie(
  reply: FastifyReply,
  config: Config,
  from: CookieKind,
  sessionToken: string,
  deviceToken?: string | null,
): void {
  clearCookie(reply, config, from);
  setCookie(reply, config, "session", sessionToken, config.limits.sessionAbsoluteTimeoutSeconds);
  if (deviceToken) setDeviceCookie(reply, config, deviceToken);
}

/**
 * A completed sign-in in a browser: session cookie, then a redirect, so spent tokens leave the address bar and history:
 * to the account picker when there is a choice, else to `/login/continue` when the sign-in was asked for with
 * `return_to` (it goes on from there), else home.
 */
export function redirectSignedIn(
  reply: FastifyReply,
  config: Config,
  from: CookieKind,
  signIn: { sessionToken: string; chooseAccount: boolean; deviceToken?: string | null },
): FastifyReply {
  setSessionCookie(reply, config, from, signIn.sessionToken, signIn.deviceToken);
  const returning = readCookie(reply.request, config, "return") !== undefined;
  return reply.redirect(pathTo(signIn.chooseAccount ? "accounts" : returning ? "loginContinue" : "home"), 303);
}
