import type { FastifyReply, FastifyRequest } from "fastify";
import type { AppContext } from "../context.js";
import type { SignedIn } from "../auth/sessions.js";
import type { TokenActor } from "../audit/events.js";
import { passwordLoginFactors, type PasswordLogin } from "../auth/fresh-proof.js";
import { LatchkeyError } from "../errors.js";
import { pathTo } from "../paths.js";
import { isApiRequest } from "./errors.js";
import { bearerCredential } from "./operator-guard.js";
import { failureError, renderFailure } from "./reply.js";
import { settingsChrome } from "./chrome.js";
import { passwordLoginOnlyPage } from "./views/settings.js";
import { routeConfigOf } from "./route-config.js";

/**
 * Who may reach a route, declared with the route (`{ config: { access: "admin" } }`) and checked once, after the
 * session is loaded and the two-factor policy applied:
 * - `signed_in`: a session; otherwise pages redirect to sign-in and the API answers 401 `unauthenticated`.
 * - `admin`: a session whose role in the current account is admin; otherwise 403 `forbidden`.
 * - `password_login`: a session that signed in with a password. The person's own password, auth app and recovery
 *   codes belong to the password login, and a session opened by single sign-on proved none of them (403).
 * - `operator`: an operator API token in `Authorization: Bearer` (the operator API, `/api/v1/admin/*`); otherwise 401
 *   `unauthenticated` (no token) or `invalid_token` (unknown, malformed or revoked). No cookie is read on these routes:
 *   no session is loaded and no session rule (two-factor policy) applies.
 * Routes without `access` are public.
 */
export type Access = "signed_in" | "admin" | "password_login" | "operator";

declare module "fastify" {
  interface FastifyContextConfig {
    access?: Access;
    /** Reachable while the account requires the auth app and the person has not set it up (see policy-guard.ts). */
    openDuringForcedSetup?: boolean;
  }
}

export const signedInOnly = { config: { access: "signed_in" } } as const;
export const adminsOnly = { config: { access: "admin" } } as const;
export const passwordLoginOnly = { config: { access: "password_login" } } as const;

/** The preHandler check of a route's `access`. Returns the reply when it answered (redirect or 403 page). */
export function checkAccess(ctx: AppContext, request: FastifyRequest, reply: FastifyReply): FastifyReply | undefined {
  const access = routeConfigOf(request).access;
  if (access === undefined) return undefined;
  if (access === "operator") {
    if (request.operator) return undefined;
    // RFC 6750 §3: a 401 for a bearer-protected resource names the scheme.
    const credential = bearerCredential(request);
    reply.header("WWW-Authenticate", credential === undefined ? "Bearer" : 'Bearer error="invalid_token"');
    if (credential === undefined)
      throw new LatchkeyError(
        "unauthenticated",
        "This needs an operator API token: send Authorization: Bearer <token> (`latchkey api-token create`). Cookies are not accepted here.",
      );
    // One answer for a malformed, an unknown and a revoked token: nothing to learn from trying.
    throw new LatchkeyError(
      "invalid_token",
      "This API token is not valid: it is mistyped, unknown or revoked. `latchkey api-token list` shows the tokens.",
    );
  }
  const me = request.signedIn;
  if (!me) {
    if (isApiRequest(request)) throw new LatchkeyError("unauthenticated", "Sign in first: this needs a session cookie.");
    return reply.redirect(pathTo("login"), 303);
  }
  if (access === "admin" && me.role !== "admin") throw new LatchkeyError("forbidden", "Only Account Admins can see or change this.");
  if (access === "password_login") {
    const login = passwordLoginFactors(me);
    if (!login.ok) {
      if (isApiRequest(request)) throw failureError(login);
      return renderFailure(reply, login, passwordLoginOnlyPage({ ...settingsChrome(ctx, request, reply, me), message: login.message }));
    }
  }
  return undefined;
}

/**
 * The signed-in person of a route declared `signed_in`, `admin` or `password_login`. Throws 401 when there is none, so
 * a route that forgot its `access` fails closed instead of running for nobody.
 */
export function signedInOf(request: FastifyRequest): SignedIn {
  if (!request.signedIn) throw new LatchkeyError("unauthenticated", "Sign in first: this needs a session cookie.");
  return request.signedIn;
}

/** The API token of a route declared `operator`. Throws 401 when there is none, so a route that forgot its `access` fails closed. */
export function operatorOf(request: FastifyRequest): TokenActor {
  if (!request.operator)
    throw new LatchkeyError("unauthenticated", "This needs an operator API token: send Authorization: Bearer <token>.");
  return request.operator;
}

/** The password login of a route declared `password_login` (what every factor function asks for). */
export function passwordLoginOf(request: FastifyRequest): PasswordLogin {
  const login = passwordLoginFactors(signedInOf(request));
  if (!login.ok) throw failureError(login);
  return login.value;
}
