import type { FastifyReply, FastifyRequest } from "fastify";
import type { AppContext } from "../context.js";
import { validateSession, type SignedIn } from "../auth/sessions.js";
import { clearCookie, readCookie } from "./cookies.js";

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
