import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { finishSsoSignIn, startSsoSignIn } from "../../auth/sso-sign-in.js";
import { clearCookie, readCookie, redirectSignedIn, setCookie } from "../cookies.js";
import { csrfToken } from "../csrf.js";
import { failureError, renderFailure, renderFailurePage } from "../reply.js";
import { apiRoute } from "../api-operations.js";
import { formSchema, parseBody } from "../input.js";
import { requestInfo } from "../request-info.js";
import { ssoContinuePage, ssoLoginPage } from "../views/login.js";
import { routes, pathTo } from "../../paths.js";
import { checkReturnTo } from "../../return-to.js";
import { redirectSignedInVisitor, rememberReturnTo, returnToFromQuery } from "../return-to.js";

// `return_to` is taken as anything: a refused one is ignored, never a 400 (see src/return-to.ts).
const ssoForm = formSchema({ domain: z.string().max(1024), return_to: z.unknown().optional() });
const ssoBody = z.object({ domain: z.string().max(1024).describe("example.com or you@example.com") }).strict();

/** "Sign in with SSO": the domain form, the hand-over to the provider, its callback, and the JSON start. */
export function ssoRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { config } = ctx;
  const chrome = { productName: config.productName };
  const cookieSeconds = config.limits.ssoLoginTtlSeconds;

  // Open during a forced auth-app setup, like /login (see there).
  app.get(routes.loginSso, { config: { openDuringForcedSetup: true } }, async (request, reply) => {
    const returnTo = await returnToFromQuery(request, ctx);
    if (request.signedIn) return redirectSignedInVisitor(request, reply, ctx, returnTo);
    return reply.html(ssoLoginPage({ ...chrome, csrf: csrfToken(request, reply, config), ...(returnTo ? { returnTo } : {}) }));
  });

  app.post(routes.loginSso, async (request, reply) => {
    const form = parseBody(ssoForm, request.body);
    const returnTo = await checkReturnTo(ctx, form.return_to);
    const result = await startSsoSignIn(ctx, { domainOrEmail: form.domain, info: requestInfo(request) });
    if (!result.ok) {
      return renderFailure(
        reply,
        result,
        ssoLoginPage({
          ...chrome,
          csrf: csrfToken(request, reply, config),
          value: form.domain.slice(0, 254),
          error: result.message,
          ...(returnTo ? { returnTo } : {}),
        }),
      );
    }
    setCookie(reply, config, "sso", result.value.browserToken, cookieSeconds);
    rememberReturnTo(reply, ctx, returnTo);
    return reply.html(ssoContinuePage({ ...chrome, url: result.value.authorizationUrl, domain: result.value.domain }));
  });

  apiRoute(
    app,
    {
      method: "POST",
      route: "apiLoginSso",
      operationId: "startSsoSignIn",
      tag: "Sign-in",
      summary: "Start single sign-on for a work email or domain (only the domain is used).",
      description:
        "Sets the `latchkey_sso` cookie; open `authorizationUrl` in the same client, which comes back to /sso/callback and gets the session cookie there.",
      access: "public",
      body: ssoBody,
      ok: {
        status: 200,
        description: "The provider's authorization URL (code flow with PKCE, state and nonce).",
        schema: z.object({ authorizationUrl: z.string().describe("URL to open in the same client") }),
      },
      errors: ["sso_not_configured", "sso_unavailable"],
    },
    async (request, reply, { body }) => {
      const result = await startSsoSignIn(ctx, { domainOrEmail: body.domain, info: requestInfo(request) });
      if (!result.ok) throw failureError(result);
      setCookie(reply, config, "sso", result.value.browserToken, cookieSeconds);
      return reply.send({ authorizationUrl: result.value.authorizationUrl });
    },
  );

  // The provider redirects the browser here (a top-level GET: the SameSite=Lax `latchkey_sso` cookie rides along).
  app.get(routes.ssoCallback, async (request, reply) => {
    const result = await finishSsoSignIn(ctx, {
      callbackPath: request.url,
      browserToken: readCookie(request, config, "sso"),
      info: requestInfo(request),
    });
    if (!result.ok) {
      // A refused answer is spent or useless: the cookie goes, except when it belongs to another sign-in of this browser.
      if (result.reason !== "wrong_browser") clearCookie(reply, config, "sso");
      return renderFailurePage(reply, config.productName, result, { href: pathTo("loginSso"), label: "Sign in with SSO" });
    }
    return redirectSignedIn(reply, config, "sso", result.value);
  });
}
