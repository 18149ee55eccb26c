import type { FastifyReply, FastifyRequest } from "fastify";
import type { AppContext } from "../context.js";
import { validateSession, type SignedIn } from "../auth/sessions.js";
import { LatchkeyError } from "../errors.js";
import { isApiRequest } from "./errors.js";
import { clearCookie, readCookie } from "./cookies.js";
import { pathTo } from "../paths.js";

declare module "fastify" {
  interface FastifyRequest {
    signedIn: SignedIn | null;
  }
}

/** Loads the session behind the cookie (if any) onto the request; a dead cookie is cleared. */
export async function loadSession(ctx: AppContext, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const token = readCookie(request, ctx.config, "session");
  request.signedIn = token === undefined ? null : await validateSession(ctx, token);
  if (token !== undefined && request.signedIn === null) clearCookie(reply, ctx.config, "session");
}

/** The signed-in person, or: a redirect to sign-in (pages) / 401 `unauthenticated` (API). */
export function requireSignedIn(request: FastifyRequest, reply: FastifyReply): SignedIn | null {
  if (request.signedIn) return request.signedIn;
  if (isApiRequest(request)) throw new LatchkeyError("unauthenticated", "Sign in first: this needs a session cookie.");
  void reply.redirect(pathTo("login"), 303);
  return null;
}
