import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { LatchkeyError } from "../../errors.js";
import { finishSsoSignIn, startSsoSignIn } from "../../auth/sso-sign-in.js";
import { clearCookie, readCookie, redirectSignedIn, setCookie } from "../cookies.js";
import { csrfToken } from "../csrf.js";
import { statusByCode } from "../errors.js";
import { formSchema, parseBody } from "../input.js";
import { requestInfo } from "../request-info.js";
import { messagePage, ssoContinuePage, ssoLoginPage } from "../views/pages.js";
import { routes, pathTo } from "../../paths.js";

const ssoForm = formSchema({ domain: z.string().max(1024) });
const ssoBody = z.object({ domain: z.string().max(1024) }).strict();

const failureTitles = {
  wrong_browser: "Finish single sign-on in the browser where you started",
  sso_state_invalid: "This single sign-on answer is not valid",
  sso_state_used: "This single sign-on answer was already used",
  sso_state_expired: "This single sign-on has expired",
  sso_not_configured: "Single sign-on is not set up",
  sso_failed: "Single sign-on did not work",
  sso_password_member: "You sign in to this account with a password",
  sso_unavailable: "Your identity provider did not answer",
} as const;

/** "Sign in with SSO": the domain form, the hand-over to the provider, its callback, and the JSON start. */
export function ssoRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { config } = ctx;
  const chrome = { productName: config.productName };
  const cookieSeconds = config.limits.ssoLoginTtlSeconds;

  app.get(routes.loginSso, async (request, reply) => {
    if (request.signedIn) return reply.redirect(pathTo("home"), 303);
    return reply.type("text/html").send(ssoLoginPage({ ...chrome, csrf: csrfToken(request, reply, config) }).value);
  });

  app.post(routes.loginSso, async (request, reply) => {
    const form = parseBody(ssoForm, request.body);
    const result = await startSsoSignIn(ctx, { domainOrEmail: form.domain, info: requestInfo(request) });
    if (!result.ok) {
      return reply
        .status(statusByCode[result.reason])
        .type("text/html")
        .send(ssoLoginPage({ ...chrome, csrf: csrfToken(request, reply, config), value: form.domain.slice(0, 254), error: result.message }).value);
    }
    setCookie(reply, config, "sso", result.value.browserToken, cookieSeconds);
    return reply.type("text/html").send(ssoContinuePage({ ...chrome, url: result.value.authorizationUrl, domain: result.value.domain }).value);
  });

  app.post(routes.apiLoginSso, async (request, reply) => {
    const body = parseBody(ssoBody, request.body);
    const result = await startSsoSignIn(ctx, { domainOrEmail: body.domain, info: requestInfo(request) });
    if (!result.ok) throw new LatchkeyError(result.reason, result.message, result.details);
    setCookie(reply, config, "sso", result.value.browserToken, cookieSeconds);
    return reply.send({ authorizationUrl: result.value.authorizationUrl });
  });

  // The provider redirects the browser here (a top-level GET: the SameSite=Lax `latchkey_sso` cookie rides along).
  app.get(routes.ssoCallback, async (request, reply) => {
    const result = await finishSsoSignIn(ctx, { callbackPath: request.url, browserToken: readCookie(request, config, "sso"), info: requestInfo(request) });
    if (!result.ok) {
      // A refused answer is spent or useless: the cookie goes, except when it belongs to another sign-in of this browser.
      if (result.reason !== "wrong_browser") clearCookie(reply, config, "sso");
      return reply
        .status(statusByCode[result.reason])
        .type("text/html")
        .send(messagePage({ productName: config.productName, title: failureTitles[result.reason], message: result.message, action: { href: pathTo("loginSso"), label: "Sign in with SSO" } }).value);
    }
    return redirectSignedIn(reply, config, "sso", result.value);
  });
}
