import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { startSignIn } from "../../auth/sign-in.js";
import { challengeEmail, findLiveChallenge } from "../../auth/challenges.js";
import type { Challenge } from "../../db/schema.js";
import { redeemEmailLink, sendEmailLink } from "../../auth/email-links.js";
import { signOut } from "../../auth/sessions.js";
import { clearCookie, readCookie, redirectSignedIn, setCookie } from "../cookies.js";
import { csrfToken } from "../csrf.js";
import { formSchema, parseBody } from "../input.js";
import { requestInfo } from "../request-info.js";
import { checkEmailPage, loginPage, messagePage, notices, type NoticeCode } from "../views/pages.js";
import { statusByCode } from "../errors.js";
import { routes, pathTo } from "../../paths.js";
import { LatchkeyError } from "../../errors.js";

const loginForm = formSchema({ email: z.string().max(1024), password: z.string().max(4096) });

function noticeFrom(request: FastifyRequest): string | undefined {
  const code = (request.query as Record<string, unknown>)["notice"];
  return typeof code === "string" && code in notices ? notices[code as NoticeCode] : undefined;
}

/** Web sign-in: the password form, "check your email", the link itself and sign-out. */
export function loginRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { config } = ctx;
  const chrome = { productName: config.productName };

  app.get(routes.login, async (request, reply) => {
    if (request.signedIn) return reply.redirect(pathTo("home"), 303);
    const notice = noticeFrom(request);
    return reply.type("text/html").send(loginPage({ ...chrome, csrf: csrfToken(request, reply, config), ...(notice ? { notice } : {}) }).value);
  });

  app.post(routes.login, async (request, reply) => {
    const form = parseBody(loginForm, request.body);
    const result = await startSignIn(ctx, { email: form.email, password: form.password, info: requestInfo(request), deviceToken: readCookie(request, config, "device") });
    if (!result.ok) {
      if (result.details?.["retryAfterSeconds"] !== undefined) reply.header("Retry-After", String(result.details["retryAfterSeconds"]));
      return reply
        .status(statusByCode[result.reason])
        .type("text/html")
        .send(loginPage({ ...chrome, csrf: csrfToken(request, reply, config), email: form.email.slice(0, 254), error: result.message }).value);
    }
    setCookie(reply, config, "challenge", result.value.challengeToken, config.limits.challengeTtlSeconds);
    const { mailError } = result.value;
    if (mailError) {
      // The challenge cookie is set: "Send a new link" on this page finishes the sign-in once mail works again.
      request.log.error({ err: mailError, cause: mailError.cause }, mailError.message);
      return renderCheckEmail(request, reply, result.value.challenge, { error: mailError.message, unsent: true }, statusByCode.mail_unavailable);
    }
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

  async function renderCheckEmail(request: FastifyRequest, reply: FastifyReply, challenge: Challenge, extra: { error?: string; notice?: string; unsent?: boolean }, status = 200): Promise<FastifyReply> {
    const email = await challengeEmail(ctx, challenge);
    return reply
      .status(status)
      .type("text/html")
      .send(checkEmailPage({ ...chrome, csrf: csrfToken(request, reply, config), email, minutes: Math.round(config.limits.emailLinkTtlSeconds / 60), ...extra }).value);
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
    let sent;
    try {
      sent = await sendEmailLink(ctx, challenge, requestInfo(request));
    } catch (error) {
      if (!(error instanceof LatchkeyError && error.code === "mail_unavailable")) throw error;
      // On the page the person is on, so they can try again; the link they had still works.
      request.log.error({ err: error, cause: error.cause }, error.message);
      return renderCheckEmail(request, reply, challenge, { error: error.message }, statusByCode.mail_unavailable);
    }
    if (!sent.ok) {
      if (sent.details?.["retryAfterSeconds"] !== undefined) reply.header("Retry-After", String(sent.details["retryAfterSeconds"]));
      return renderCheckEmail(request, reply, challenge, { error: sent.message }, statusByCode[sent.reason]);
    }
    return renderCheckEmail(request, reply, challenge, { notice: "We sent a new link. Earlier links no longer work." });
  });

  app.get<{ Params: { token: string } }>(routes.loginEmailLink, async (request, reply) => {
    const result = await redeemEmailLink(ctx, { linkToken: request.params.token, challengeToken: readCookie(request, config, "challenge"), info: requestInfo(request) });
    if (!result.ok) {
      const titles = {
        wrong_browser: "Open this link in the browser where you signed in",
        link_used: "This link was already used",
        link_expired: "This link has expired",
        link_invalid: "This link does not work",
        challenge_expired: "This sign-in has ended",
      } as const;
      return reply
        .status(statusByCode[result.reason])
        .type("text/html")
        .send(messagePage({ productName: config.productName, title: titles[result.reason], message: result.message, action: { href: pathTo("login"), label: "Go to sign in" } }).value);
    }
    return redirectSignedIn(reply, config, "challenge", result.value);
  });

  app.post(routes.logout, async (request, reply) => {
    parseBody(formSchema({}), request.body);
    if (request.signedIn) await signOut(ctx, request.signedIn, requestInfo(request));
    clearCookie(reply, config, "session");
    return reply.redirect(pathTo("login", {}, { notice: "signed_out" }), 303);
  });
}
