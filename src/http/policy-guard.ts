import type { FastifyReply, FastifyRequest } from "fastify";
import type { AppContext } from "../context.js";
import { checkReturnTo } from "../return-to.js";
import { rememberReturnTo } from "./return-to.js";
import { LatchkeyError } from "../errors.js";
import { mustSetUpAuthApp } from "../team/policy.js";
import { isApiRequest } from "./errors.js";
import { pathTo, routes } from "../paths.js";
import { routeConfigOf } from "./route-config.js";

/**
 * While the account requires the auth app and this member has not set it up, only these stay reachable: the setup
 * itself (with password confirmation and the codes download), sign-out, help, and the read-only session calls that
 * let a client see why. Everything else — including the forward-auth check for the protected app — is refused.
 */
const ALLOWED = [
  /^\/settings\/two-factor(\/.*)?$/,
  /^\/settings\/confirm-password$/,
  /^\/logout$/,
  /^\/assets\//,
  /^\/help$/,
  // Pages that do not use the session: accepting an invitation to another account, asking support for help.
  /^\/invite\/[^/]+$/,
  /^\/support(\/.*)?$/,
  /^\/login\/forgot$/,
  /^\/login\/reset\/[^/]+$/,
  // Switching to another of the person's accounts is allowed: the policy is the account's, not the person's.
  /^\/accounts(\/switch)?$/,
  /^\/healthz$/,
];

export async function enforceTwoFactorPolicy(
  ctx: AppContext,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply | undefined> {
  const me = request.signedIn;
  if (!me || !mustSetUpAuthApp(me)) return undefined;
  const path = request.url.split("?")[0] ?? "";
  // API operations declare it (`openDuringForcedSetup`), so the OpenAPI document says the same as this check.
  if (routeConfigOf(request).openDuringForcedSetup || ALLOWED.some((pattern) => pattern.test(path))) return undefined;
  const message = `${me.account.name} requires an authenticator app for every team member. Set it up to continue.`;
  if (isApiRequest(request)) throw new LatchkeyError("two_factor_setup_required", message, { setupUrl: pathTo("twoFactor") });
  // A page the person asked for (an application's sign-in through the OpenID Provider above all) is kept, so that
  // "Continue" after the setup leads there instead of dropping the request. Not the continue step itself: it is how a
  // sign-in that already keeps a target arrives here, and that target stays.
  if (request.method === "GET" && path !== routes.loginContinue) {
    const target = await checkReturnTo(ctx, request.url);
    if (target !== null) rememberReturnTo(reply, ctx, target);
  }
  return reply.redirect(pathTo("twoFactor"), 303);
}
