import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { findLiveChallenge } from "../../auth/challenges.js";
import { signInWithCode, type CodeKind } from "../../auth/second-factor.js";
import { clearCookie, readCookie, redirectSignedIn, setSessionCookie } from "../cookies.js";
import { csrfToken } from "../csrf.js";
import { apiRoute } from "../api-operations.js";
import { formSchema, parseBody } from "../input.js";
import { requestInfo } from "../request-info.js";
import { failureError, renderFailure, renderFailurePage } from "../reply.js";
import { codePage, recoveryCodePage } from "../views/second-factor.js";
import { routes, pathTo } from "../../paths.js";

// Generous bound: the precise shape check (and its message) is the domain's; this only stops absurd input early.
const codeField = z.string().max(256, "is too long: a code has at most a few dozen characters");
const codeForm = formSchema({ code: codeField });
const codeBody = z.object({ code: codeField }).strict();

/** The second step for auth-app users: a code from the app, or a recovery code. Pages and JSON. */
export function secondFactorRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { config } = ctx;
  const pages = { auth_app: codePage, recovery_code: recoveryCodePage } as const;

  async function showPage(kind: CodeKind, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const challenge = await findLiveChallenge(ctx, readCookie(request, config, "challenge"));
    if (!challenge) {
      clearCookie(reply, config, "challenge");
      return reply.redirect(pathTo("login", {}, { notice: "challenge_expired" }), 303);
    }
    return reply.html(pages[kind]({ productName: config.productName, csrf: csrfToken(request, reply, config) }));
  }

  async function submit(kind: CodeKind, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const form = parseBody(codeForm, request.body);
    const result = await signInWithCode(ctx, {
      challengeToken: readCookie(request, config, "challenge"),
      code: form.code,
      kind,
      info: requestInfo(request),
    });
    if (!result.ok) {
      if (result.reason === "challenge_expired") {
        clearCookie(reply, config, "challenge");
        // The sign-in is over (too many wrong codes, or it timed out): no form to retry, only the way back.
        return renderFailurePage(reply, config.productName, result, { href: pathTo("login"), label: "Sign in again" });
      }
      return renderFailure(
        reply,
        result,
        pages[kind]({ productName: config.productName, csrf: csrfToken(request, reply, config), error: result.message }),
      );
    }
    return redirectSignedIn(reply, config, "challenge", result.value);
  }

  app.get(routes.loginCode, (request, reply) => showPage("auth_app", request, reply));
  app.post(routes.loginCode, (request, reply) => submit("auth_app", request, reply));
  app.get(routes.loginRecovery, (request, reply) => showPage("recovery_code", request, reply));
  app.post(routes.loginRecovery, (request, reply) => submit("recovery_code", request, reply));

  async function api(kind: CodeKind, request: FastifyRequest, reply: FastifyReply, body: z.infer<typeof codeBody>): Promise<FastifyReply> {
    const result = await signInWithCode(ctx, {
      challengeToken: readCookie(request, config, "challenge"),
      code: body.code,
      kind,
      info: requestInfo(request),
    });
    if (!result.ok) {
      if (result.reason === "challenge_expired") clearCookie(reply, config, "challenge");
      throw failureError(result);
    }
    setSessionCookie(reply, config, "challenge", result.value.sessionToken, result.value.deviceToken);
    return reply.send({
      ok: true,
      ...(result.value.recoveryCodesRemaining !== null ? { recoveryCodesRemaining: result.value.recoveryCodesRemaining } : {}),
    });
  }

  const codeErrors = [
    "challenge_expired",
    "invalid_code_format",
    "invalid_code",
    "code_reused",
    "too_many_attempts",
    "auth_app_not_enabled",
  ] as const;
  const signedInNote = "Signed in: the session cookie and the long-lived device cookie (`latchkey_device`) are set.";
  apiRoute(
    app,
    {
      method: "POST",
      route: "apiLoginCode",
      operationId: "signInWithAuthAppCode",
      tag: "Sign-in",
      summary: "Auth-app step: the 6-digit code for the sign-in in progress. Each time step is accepted once.",
      description:
        "A malformed code is refused (400) without counting as a try; wrong codes count per sign-in and per user, then code entry pauses (429).",
      access: "challenge",
      body: codeBody,
      ok: { status: 200, description: signedInNote, schema: z.object({ ok: z.literal(true) }) },
      errors: [...codeErrors],
    },
    (request, reply, { body }) => api("auth_app", request, reply, body),
  );
  apiRoute(
    app,
    {
      method: "POST",
      route: "apiLoginRecoveryCode",
      operationId: "signInWithRecoveryCode",
      tag: "Sign-in",
      summary: "Recovery-code step instead of the app code. Each code works once.",
      access: "challenge",
      body: codeBody,
      ok: {
        status: 200,
        description: `${signedInNote} \`recoveryCodesRemaining\` tells how many codes are left.`,
        schema: z.object({ ok: z.literal(true), recoveryCodesRemaining: z.number().int() }),
      },
      errors: [...codeErrors],
    },
    (request, reply, { body }) => api("recovery_code", request, reply, body),
  );
}
