import type { FastifyReply, FastifyRequest } from "fastify";
import type { Config } from "../config.js";
import type { AppContext } from "../context.js";
import { constantTimeEqual, sign } from "../auth/tokens.js";
import { pathTo, routes } from "../paths.js";
import { checkReturnTo } from "../return-to.js";
import { mustSetUpAuthApp } from "../team/policy.js";
import { clearCookie, readCookie, setCookie } from "./cookies.js";
import { continueToPage } from "./views/login.js";

/**
 * `return_to` across a sign-in. The sign-in form carries the checked target in a hidden field; when the password step
 * (or "Sign in with SSO") succeeds it is kept with the browser in the `latchkey_return` cookie, signed and short-lived,
 * because the sign-in goes on from places that carry nothing: the link opened from the mail, the identity provider's
 * callback, the account picker, the forced auth-app setup. Every completed sign-in that has it goes through
 * `/login/continue`, the one place it is used (and cleared). See docs/decisions.md.
 */

const PURPOSE = "return-to";

/** Keeps `target` (already checked) with the browser for the sign-in in progress; null forgets a kept one. */
export function rememberReturnTo(reply: FastifyReply, ctx: AppContext, target: string | null): void {
  if (target === null) {
    clearCookie(reply, ctx.config, "return");
    return;
  }
  const ttl = ctx.config.limits.returnToTtlSeconds;
  // The expiry is inside the signed value: a browser that keeps the cookie longer than Max-Age gains nothing.
  const body = `${ctx.clock.now() + ttl * 1000}.${Buffer.from(target, "utf8").toString("base64url")}`;
  setCookie(reply, ctx.config, "return", `${body}.${sign(ctx.config.secretKey, PURPOSE, body)}`, ttl);
}

/** Whether the browser holds a kept target (unchecked): then the sign-in's next stop is `/login/continue`. */
export function hasReturnTo(request: FastifyRequest, config: Config): boolean {
  return readCookie(request, config, "return") !== undefined;
}

/**
 * The kept target, or null, and forgets it: it is used once. Checked again on the way out — signature, expiry, and
 * the allowed origins as they are now — since a cookie is the browser's to change (a sibling subdomain can plant one
 * under http) and an origin may have been removed since.
 */
export async function takeReturnTo(request: FastifyRequest, reply: FastifyReply, ctx: AppContext): Promise<string | null> {
  const value = readCookie(request, ctx.config, "return");
  if (value === undefined) return null;
  clearCookie(reply, ctx.config, "return");
  const [expires, encoded, mac, ...rest] = value.split(".");
  if (rest.length > 0 || !expires || !encoded || !mac) return null;
  if (!constantTimeEqual(mac, sign(ctx.config.secretKey, PURPOSE, `${expires}.${encoded}`))) return null;
  if (!/^\d{1,15}$/.test(expires) || Number(expires) <= ctx.clock.now()) return null;
  return checkReturnTo(ctx, Buffer.from(encoded, "base64url").toString("utf8"));
}

/**
 * Sends a signed-in browser to a checked target, or home when there is none. A page of ours: a redirect. Another
 * origin, or the OpenID Provider's interaction (which redirects on to the application's origin): a page that moves on
 * at once — browsers hold the whole redirect chain that follows one of our forms (the code step, the account picker)
 * to the CSP's form-action 'self', and would block its last hop.
 */
export function sendToReturnTo(reply: FastifyReply, ctx: AppContext, target: string | null): FastifyReply {
  if (target === null) return reply.redirect(pathTo("home"), 303);
  const url = new URL(target);
  const ours = url.origin === ctx.config.publicUrl.origin;
  if (ours && !url.pathname.startsWith(OIDC_PREFIX)) return reply.redirect(url.href, 303);
  const destination = ours ? "the application that asked you to sign in" : url.host;
  return reply.html(continueToPage({ productName: ctx.config.productName, url: url.href, destination }));
}

/** The OpenID Provider's paths (src/paths.ts): their redirects end on a client's origin. */
const OIDC_PREFIX = `/${routes.oidcInteraction.split("/")[1]}/`;

/**
 * A person already signed in opens a sign-in page with `return_to`: straight there (a plain GET, so a redirect), or,
 * while they owe the auth-app setup their account requires, keep it and go through the setup first.
 */
export function redirectSignedInVisitor(
  request: FastifyRequest,
  reply: FastifyReply,
  ctx: AppContext,
  target: string | null,
): FastifyReply {
  const me = request.signedIn;
  if (target === null || me === null) return reply.redirect(pathTo("home"), 303);
  if (mustSetUpAuthApp(me)) {
    rememberReturnTo(reply, ctx, target);
    return reply.redirect(pathTo("loginContinue"), 303);
  }
  rememberReturnTo(reply, ctx, null);
  return reply.redirect(target, 303);
}

/** `return_to` from the query string, checked (a missing, repeated or refused one is null). */
export function returnToFromQuery(request: FastifyRequest, ctx: AppContext): Promise<string | null> {
  return checkReturnTo(ctx, (request.query as Record<string, unknown> | undefined)?.["return_to"]);
}
