import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { LatchkeyError } from "../../errors.js";
import { startSignIn } from "../../auth/sign-in.js";
import { findLiveChallenge } from "../../auth/challenges.js";
import { sendEmailLink } from "../../auth/email-links.js";
import { signOut } from "../../auth/sessions.js";
import { clearCookie, readCookie, setCookie } from "../cookies.js";
import { parseBody } from "../input.js";
import { requestInfo } from "../request-info.js";
import { signedInOf, signedInOnly } from "../access.js";
import { failureError } from "../reply.js";
import { mustSetUpAuthApp } from "../../team/policy.js";
import { routes } from "../../paths.js";

const loginBody = z.object({ email: z.string().max(1024), password: z.string().max(4096) }).strict();

/** The JSON API under /api/v1: the same domain calls as the pages, answered as JSON. */
export function apiRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { config } = ctx;

  app.post(routes.apiLogin, async (request, reply) => {
    const body = parseBody(loginBody, request.body);
    // The device cookie is a cookie like the challenge's: API clients with a cookie jar are trusted devices too.
    const result = await startSignIn(ctx, { email: body.email, password: body.password, info: requestInfo(request), deviceToken: readCookie(request, config, "device") });
    if (!result.ok) throw failureError(result);
    setCookie(reply, config, "challenge", result.value.challengeToken, config.limits.challengeTtlSeconds);
    // 503 with the challenge cookie kept: POST /api/v1/login/email-link sends the link once mail works again.
    if (result.value.mailError) throw result.value.mailError;
    return reply.send({ next: result.value.next });
  });

  app.post(routes.apiLoginEmailLink, async (request, reply) => {
    parseBody(z.object({}).strict(), request.body);
    const challenge = await findLiveChallenge(ctx, readCookie(request, config, "challenge"));
    if (!challenge) throw new LatchkeyError("challenge_missing", "There is no sign-in in progress in this client. Send your email and password to /api/v1/login first.");
    const sent = await sendEmailLink(ctx, challenge, requestInfo(request));
    if (!sent.ok) throw failureError(sent);
    return reply.send({ next: "email_link", retryAfterSeconds: sent.value.retryAfterSeconds });
  });

  app.get(routes.apiSession, signedInOnly, async (request, reply) => {
    const me = signedInOf(request);
    return reply.send({
      user: { id: me.user.id, email: me.user.email, name: me.user.name },
      account: { id: me.account.id, name: me.account.name },
      role: me.role,
      twoFactor: { method: me.user.twoFactorMethod, setupRequired: mustSetUpAuthApp(me) },
      expiresAt: new Date(me.expiresAt).toISOString(),
    });
  });

  app.post(routes.apiLogout, async (request, reply) => {
    if (request.signedIn) await signOut(ctx, request.signedIn, requestInfo(request));
    clearCookie(reply, config, "session");
    return reply.code(204).send();
  });

  // Forward auth for nginx auth_request, Caddy forward_auth and Traefik ForwardAuth: 200 + identity headers, or 401.
  app.get(routes.apiVerify, async (request, reply) => {
    const me = request.signedIn;
    if (!me) throw new LatchkeyError("unauthenticated", "No valid Latchkey session.");
    return reply
      .header("X-Latchkey-User-Id", me.user.id)
      .header("X-Latchkey-Email", me.user.email)
      .header("X-Latchkey-Account-Id", me.account.id)
      .header("X-Latchkey-Role", me.role)
      .send();
  });
}
