import type { FastifyReply, FastifyRequest } from "fastify";
import type { AppContext } from "../context.js";
import { constantTimeEqual, sign } from "../auth/tokens.js";
import { clearCookie, readCookie, setCookie } from "./cookies.js";

/**
 * The email the sign-in page fills in right after the person set their password (an invitation, the first-run setup),
 * so they type only the password they just chose. It rides from that form to `/login` in a cookie, not in the URL: an
 * address in a query string ends up in logs, history and Referer headers. The cookie is signed (a sibling subdomain
 * cannot plant someone else's address over http), expires on its own (`loginHintTtlSeconds`) and is used once. See
 * docs/decisions.md.
 */

const PURPOSE = "login-hint";

export function rememberLoginEmail(reply: FastifyReply, ctx: AppContext, email: string): void {
  const ttl = ctx.config.limits.loginHintTtlSeconds;
  // The expiry is inside the signed value: a browser that keeps the cookie longer than Max-Age gains nothing.
  const body = `${ctx.clock.now() + ttl * 1000}.${Buffer.from(email, "utf8").toString("base64url")}`;
  setCookie(reply, ctx.config, "login_hint", `${body}.${sign(ctx.config.secretKey, PURPOSE, body)}`, ttl);
}

/** The email kept by `rememberLoginEmail`, once (the cookie is cleared), or undefined when there is none or it is not ours. */
export function takeLoginEmail(request: FastifyRequest, reply: FastifyReply, ctx: AppContext): string | undefined {
  const value = readCookie(request, ctx.config, "login_hint");
  if (value === undefined) return undefined;
  clearCookie(reply, ctx.config, "login_hint");
  const [expires, encoded, mac, ...rest] = value.split(".");
  if (rest.length > 0 || !expires || !encoded || !mac) return undefined;
  if (!constantTimeEqual(mac, sign(ctx.config.secretKey, PURPOSE, `${expires}.${encoded}`))) return undefined;
  if (!/^\d{1,15}$/.test(expires) || Number(expires) <= ctx.clock.now()) return undefined;
  const email = Buffer.from(encoded, "base64url").toString("utf8");
  return email.length <= ctx.config.limits.emailMaxLength ? email : undefined;
}
