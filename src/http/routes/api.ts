import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { LatchkeyError } from "../../errors.js";
import { startSignIn } from "../../auth/sign-in.js";
import { findLiveChallenge } from "../../auth/challenges.js";
import { sendEmailLink } from "../../auth/email-links.js";
import { signOut } from "../../auth/sessions.js";
import { mustSetUpAuthApp } from "../../team/policy.js";
import { signedInOf } from "../access.js";
import { apiRoute, isoTime, roleSchema } from "../api-operations.js";
import { clearCookie, readCookie, setCookie } from "../cookies.js";
import { withLoginUrlOnRefusal } from "../forward-auth.js";
import { failureError } from "../reply.js";
import { requestInfo } from "../request-info.js";

const loginBody = z.object({ email: z.string().max(1024), password: z.string().max(4096) }).strict();

const sessionSchema = z.object({
  user: z.object({ id: z.string(), email: z.string(), name: z.string() }),
  account: z.object({ id: z.string(), name: z.string() }),
  role: roleSchema,
  twoFactor: z.object({
    method: z.enum(["email_link", "auth_app", "sso"]),
    setupRequired: z.boolean().describe("The account requires the auth app and this person has not set it up: only setup is reachable."),
  }),
  expiresAt: isoTime.describe("When the session ends at the latest (absolute timeout)"),
});

/** The JSON API of the password step and the session: the same domain calls as the pages, answered as JSON. */
export function apiRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { config } = ctx;

  apiRoute(
    app,
    {
      method: "POST",
      route: "apiLogin",
      operationId: "startSignIn",
      tag: "Sign-in",
      summary: "Password step: starts a sign-in (challenge cookie) and, for email-link users, emails the link.",
      description:
        "An unknown email and a wrong password answer the same 401, in the same time. A browser that completed a sign-in before (its device cookie) counts wrong passwords against its own limit.",
      access: "public",
      body: loginBody,
      ok: {
        status: 200,
        description: "Password accepted; the challenge cookie is set. `next` says which second factor follows.",
        schema: z.object({ next: z.enum(["email_link", "auth_app"]) }),
      },
      errors: ["invalid_credentials", "too_many_attempts"],
    },
    async (request, reply, { body }) => {
      // The device cookie is a cookie like the challenge's: API clients with a cookie jar are trusted devices too.
      const result = await startSignIn(ctx, {
        email: body.email,
        password: body.password,
        info: requestInfo(request),
        deviceToken: readCookie(request, config, "device"),
      });
      if (!result.ok) throw failureError(result);
      setCookie(reply, config, "challenge", result.value.challengeToken, config.limits.challengeTtlSeconds);
      return reply.send({ next: result.value.next });
    },
  );

  apiRoute(
    app,
    {
      method: "POST",
      route: "apiLoginEmailLink",
      operationId: "sendEmailLink",
      tag: "Sign-in",
      summary: "Send a new sign-in link for the sign-in in progress; older links stop working.",
      access: "challenge",
      body: z.object({}).strict(),
      ok: {
        status: 200,
        description: "Queued: delivered right after the answer, and retried while the mail server fails. Older links stop working.",
        schema: z.object({
          next: z.literal("email_link"),
          retryAfterSeconds: z.number().int().describe("Seconds before another link can be asked for"),
        }),
      },
      errors: ["challenge_missing", "rate_limited", "too_many_attempts", "link_invalid"],
    },
    async (request, reply) => {
      const challenge = await findLiveChallenge(ctx, readCookie(request, config, "challenge"));
      if (!challenge)
        throw new LatchkeyError(
          "challenge_missing",
          "There is no sign-in in progress in this client. Send your email and password to /api/v1/login first.",
        );
      const sent = await sendEmailLink(ctx, challenge, requestInfo(request));
      if (!sent.ok) throw failureError(sent);
      return reply.send({ next: "email_link", retryAfterSeconds: sent.value.retryAfterSeconds });
    },
  );

  apiRoute(
    app,
    {
      method: "GET",
      route: "apiSession",
      operationId: "getSession",
      tag: "Session",
      summary: "The current session: who, which account, which role and two-factor method.",
      access: "signed_in",
      openDuringForcedSetup: true,
      hotPath: true,
      ok: { status: 200, description: "Signed in.", schema: sessionSchema },
      errors: [],
    },
    async (request, reply) => {
      const me = signedInOf(request);
      return reply.send({
        user: { id: me.user.id, email: me.user.email, name: me.user.name },
        account: { id: me.account.id, name: me.account.name },
        role: me.role,
        twoFactor: { method: me.user.twoFactorMethod, setupRequired: mustSetUpAuthApp(me) },
        expiresAt: new Date(me.expiresAt).toISOString(),
      });
    },
  );

  apiRoute(
    app,
    {
      method: "POST",
      route: "apiLogout",
      operationId: "signOut",
      tag: "Session",
      summary: "Ends the session server-side (on every instance at once) and clears the cookie.",
      access: "optional_session",
      openDuringForcedSetup: true,
      ok: { status: 204, description: "Signed out (also when there was no session)." },
      errors: [],
    },
    async (request, reply) => {
      if (request.signedIn) {
        await signOut(ctx, request.signedIn, requestInfo(request));
        // The applications signed in through this session are told now, not at the next periodic sweep.
        app.oidc.requestSweep();
      }
      clearCookie(reply, config, "session");
      return reply.code(204).send();
    },
  );

  // Forward auth for nginx auth_request, Caddy forward_auth and Traefik ForwardAuth: 200 + identity headers, or 401.
  apiRoute(
    app,
    {
      method: "GET",
      route: "apiVerify",
      operationId: "verifySession",
      tag: "Session",
      summary: "Forward auth for reverse proxies: 200 with identity headers, or 401.",
      description:
        "403 `two_factor_setup_required` while the account requires the auth app and the person has not set it up. A 401 carries `X-Latchkey-Login-Url`: the sign-in page, with `return_to` set to the original URL when the proxy sends it as `X-Forwarded-Proto`, `X-Forwarded-Host` and `X-Forwarded-Uri`, percent-encoded; the proxy redirects the browser there.",
      access: "signed_in",
      hotPath: true,
      ok: {
        status: 200,
        description: "Signed in; the identity is in the headers (no body).",
        headers: {
          "X-Latchkey-User-Id": "The user's stable id",
          "X-Latchkey-Email": "The user's email address",
          "X-Latchkey-Account-Id": "The account the session is in",
          "X-Latchkey-Role": "`admin` or `member`",
        },
      },
      errors: [],
    },
    async (request, reply) => {
      const me = signedInOf(request);
      return reply
        .header("X-Latchkey-User-Id", me.user.id)
        .header("X-Latchkey-Email", me.user.email)
        .header("X-Latchkey-Account-Id", me.account.id)
        .header("X-Latchkey-Role", me.role)
        .send();
    },
    withLoginUrlOnRefusal(config),
  );
}
