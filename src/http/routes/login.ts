import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { startSignIn } from "../../auth/sign-in.js";
import { challengeEmail, findLiveChallenge } from "../../auth/challenges.js";
import type { Challenge } from "../../db/schema.js";
import { redeemEmailLink, sendEmailLink, signInLinkDelivery } from "../../auth/email-links.js";
import { signOut } from "../../auth/sessions.js";
import { clearCookie, readCookie, redirectSignedIn, setCookie } from "../cookies.js";
import { csrfToken } from "../csrf.js";
import { formSchema, noticeFrom, parseBody } from "../input.js";
import { takeLoginEmail } from "../login-hint.js";
import { renderFailure, renderFailurePage, type Failure } from "../reply.js";
import { requestInfo } from "../request-info.js";
import { checkEmailPage, loginPage, notices } from "../views/login.js";
import { routes, pathTo } from "../../paths.js";
import { checkReturnTo } from "../../return-to.js";
import { signedInOnly } from "../access.js";
import { redirectSignedInVisitor, rememberReturnTo, returnToFromQuery, sendToReturnTo, takeReturnTo } from "../return-to.js";

// `return_to` is taken as anything: a refused one is ignored, never a 400 (see src/return-to.ts).
const loginForm = formSchema({ email: z.string().max(1024), password: z.string().max(4096), return_to: z.unknown().optional() });

/** Web sign-in: the password form, "check your email", the link itself and sign-out. */
export function loginRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { config } = ctx;
  const chrome = { productName: config.productName };

  // Open during a forced auth-app setup, so that a signed-in member who owes it keeps the `return_to` for after it.
  app.get(routes.login, { config: { openDuringForcedSetup: true } }, async (request, reply) => {
    const returnTo = await returnToFromQuery(request, ctx);
    if (request.signedIn) return redirectSignedInVisitor(request, reply, ctx, returnTo);
    const notice = noticeFrom(notices, request);
    // Just after setting a password (invitation, first-run setup): the address it was set for.
    const email = takeLoginEmail(request, reply, ctx);
    return reply.html(
      loginPage({
        ...chrome,
        csrf: csrfToken(request, reply, config),
        ...(notice ? { notice } : {}),
        ...(returnTo ? { returnTo } : {}),
        ...(email ? { email } : {}),
      }),
    );
  });

  app.post(routes.login, async (request, reply) => {
    const form = parseBody(loginForm, request.body);
    const returnTo = await checkReturnTo(ctx, form.return_to);
    const result = await startSignIn(ctx, {
      email: form.email,
      password: form.password,
      info: requestInfo(request),
      deviceToken: readCookie(request, config, "device"),
    });
    if (!result.ok) {
      return renderFailure(
        reply,
        result,
        loginPage({
          ...chrome,
          csrf: csrfToken(request, reply, config),
          email: form.email.slice(0, 254),
          error: result.message,
          ...(returnTo ? { returnTo } : {}),
        }),
      );
    }
    setCookie(reply, config, "challenge", result.value.challengeToken, config.limits.challengeTtlSeconds);
    // Kept with the browser for the rest of the sign-in; a start without one forgets one left from an earlier start.
    rememberReturnTo(reply, ctx, returnTo);
    return reply.redirect(pathTo(result.value.next === "email_link" ? "loginEmail" : "loginCode"), 303);
  });

  async function challengeOrRestart(request: FastifyRequest, reply: FastifyReply): Promise<Awaited<ReturnType<typeof findLiveChallenge>>> {
    const challenge = await findLiveChallenge(ctx, readCookie(request, config, "challenge"));
    if (!challenge) {
      clearCookie(reply, config, "challenge");
      void reply.redirect(pathTo("login", {}, { notice: "challenge_expired" }), 303);
    }
    return challenge;
  }

  /** "Check your email" (saying so when delivery of the link is failing); with a failure, its message and status. */
  async function renderCheckEmail(
    request: FastifyRequest,
    reply: FastifyReply,
    challenge: Challenge,
    extra: { notice?: string },
    failure?: Failure,
  ): Promise<FastifyReply> {
    const email = await challengeEmail(ctx, challenge);
    const delivery = await signInLinkDelivery(ctx, challenge);
    const page = checkEmailPage({
      ...chrome,
      csrf: csrfToken(request, reply, config),
      email,
      minutes: Math.round(config.limits.emailLinkTtlSeconds / 60),
      ...extra,
      ...(delivery === "failing" || delivery === "failed" ? { delivery } : {}),
      ...(failure ? { error: failure.message } : {}),
    });
    return failure ? renderFailure(reply, failure, page) : reply.html(page);
  }

  app.get(routes.loginEmail, async (request, reply) => {
    const challenge = await challengeOrRestart(request, reply);
    if (!challenge) return reply;
    return renderCheckEmail(request, reply, challenge, {});
  });

  app.post(routes.loginEmailResend, async (request, reply) => {
    parseBody(formSchema({}), request.body);
    const challenge = await challengeOrRestart(request, reply);
    if (!challenge) return reply;
    const sent = await sendEmailLink(ctx, challenge, requestInfo(request));
    if (!sent.ok) {
      return renderCheckEmail(request, reply, challenge, {}, sent);
    }
    return renderCheckEmail(request, reply, challenge, { notice: "We sent a new link. Earlier links no longer work." });
  });

  app.get<{ Params: { token: string } }>(routes.loginEmailLink, async (request, reply) => {
    const result = await redeemEmailLink(ctx, {
      linkToken: request.params.token,
      challengeToken: readCookie(request, config, "challenge"),
      info: requestInfo(request),
    });
    if (!result.ok) return renderFailurePage(reply, config.productName, result, { href: pathTo("login"), label: "Go to sign in" });
    return redirectSignedIn(reply, config, "challenge", result.value);
  });

  // Every completed sign-in that was asked for with `return_to` comes here (after the account picker and any forced
  // auth-app setup, which the policy guard sends the person through first): the one place the kept target is used.
  app.get(routes.loginContinue, signedInOnly, async (request, reply) =>
    sendToReturnTo(reply, ctx, await takeReturnTo(request, reply, ctx)),
  );

  app.post(routes.logout, async (request, reply) => {
    parseBody(formSchema({}), request.body);
    if (request.signedIn) {
      await signOut(ctx, request.signedIn, requestInfo(request));
      // The applications signed in through this session are told now, not at the next periodic sweep.
      app.oidc.requestSweep();
    }
    clearCookie(reply, config, "session");
    clearCookie(reply, config, "return");
    return reply.redirect(pathTo("login", {}, { notice: "signed_out" }), 303);
  });
}
