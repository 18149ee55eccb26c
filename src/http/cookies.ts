import type { FastifyReply, FastifyRequest } from "fastify";
import type { CookieSerializeOptions } from "@fastify/cookie";
import type { Config } from "../config.js";

/** `sso`: binds a single sign-on in flight to the browser that started it (like the challenge cookie for the email link). */
export type CookieKind = "session" | "challenge" | "csrf" | "sso";

/**
 * Cookie names: with an https public URL every cookie gets `Secure` and the `__Host-` prefix, which the browser only
 * accepts from a secure origin with Path=/ and no Domain — so no subdomain can plant or overwrite it.
 */
export function cookieName(config: Config, kind: CookieKind): string {
  return `${config.secureCookies ? "__Host-" : ""}latchkey_${kind}`;
}

export function cookieOptions(config: Config, maxAgeSeconds?: number): CookieSerializeOptions {
  return {
    path: "/",
    httpOnly: true,
    // Lax: the cookie rides along when a person opens the emailed link (a top-level navigation from their mail), but
    // not on cross-site subrequests or POSTs.
    sameSite: "lax",
    secure: config.secureCookies,
    ...(maxAgeSeconds !== undefined ? { maxAge: maxAgeSeconds } : {}),
  };
}

export function readCookie(request: FastifyRequest, config: Config, kind: CookieKind): string | undefined {
  return request.cookies[cookieName(config, kind)];
}

export function setCookie(reply: FastifyReply, config: Config, kind: CookieKind, value: string, maxAgeSeconds?: number): void {
  reply.setCookie(cookieName(config, kind), value, cookieOptions(config, maxAgeSeconds));
}

export function clearCookie(reply: FastifyReply, config: Config, kind: CookieKind): void {
  reply.clearCookie(cookieName(config, kind), cookieOptions(config));
}
