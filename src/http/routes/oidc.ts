import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { AppContext } from "../../context.js";
import { signOut, validateSession } from "../../auth/sessions.js";
import { OidcService } from "../../oidc/service.js";
import { pathTo, routes } from "../../paths.js";
import { clearCookie, cookieName, cookieOptions } from "../cookies.js";
import { csrfToken } from "../csrf.js";
import { formSchema, parseBody } from "../input.js";
import { renderFailurePage } from "../reply.js";
import { requestInfo } from "../request-info.js";
import { oidcErrorPage, oidcLoggedOutPage, oidcLogoutPage, oidcSignInAgainPage } from "../views/oidc.js";

/** The paths oidc-provider answers itself (everything but the interaction, which is Latchkey's sign-in). */
const PROVIDER_PATHS = new Set<string>([
  routes.oidcDiscovery,
  routes.oauthDiscovery,
  routes.oidcAuthorization,
  routes.oidcToken,
  routes.oidcUserinfo,
  routes.oidcJwks,
  routes.oidcIntrospection,
  routes.oidcRevocation,
  routes.oidcEndSession,
  routes.oidcEndSessionConfirm,
  routes.oidcEndSessionSuccess,
]);
/** `/oidc/auth/<uid>`: where the provider resumes an authorization after the interaction. */
const RESUME_PATH = new RegExp(`^${routes.oidcAuthorization}/[A-Za-z0-9_-]{1,64}$`);

export function isProviderPath(path: string): boolean {
  return PROVIDER_PATHS.has(path) || RESUME_PATH.test(path);
}

/** The provider's interaction ids: 43 characters of its URL-safe alphabet. */
const UID = /^[A-Za-z0-9_-]{21,64}$/;

/**
 * The CSP of the provider's answers. Helmet's (`default-src 'none'`, `form-action 'self'`) would block what the
 * provider legitimately does: the `form_post` response posts to the client with a tiny script (whose hash the provider
 * adds to `script-src`), and the logout form redirects to the client's post-logout URI, which `form-action` also
 * governs. Everything else stays as strict: no frames, no plugins, no other origins for anything loaded.
 */
const PROVIDER_CSP =
  "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'";

declare module "fastify" {
  interface FastifyInstance {
    /** The OpenID Provider of this instance (tests and `latchkey serve` run its logout sweep). */
    oidc: OidcService;
  }
}

/**
 * The OpenID Provider in the web server:
 * - its endpoints are handed over to oidc-provider in an onRequest hook, before Fastify parses a body, so the library
 *   does its own parsing, CSRF protection, CORS and caching; our CSRF check, session loading, policy guard and
 *   `no-store` hook never run on them;
 * - the interaction (`/oidc/interaction/:uid`) is an ordinary Latchkey page: the session guard and the "Require auth
 *   app" policy guard run before it, as everywhere.
 */
export function oidcRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { config } = ctx;
  const chrome = { productName: config.productName };
  const sessionCookie = cookieName(config, "session");

  const oidc = new OidcService(ctx, {
    log: app.log,
    pages: {
      logout: ({ form, clientName }) => oidcLogoutPage({ ...chrome, form, clientName }).value,
      loggedOut: ({ clientName }) => oidcLoggedOutPage({ ...chrome, clientName }).value,
      error: ({ error, description }) => oidcErrorPage({ ...chrome, error, description }).value,
    },
    async endBrowserSession(cookieHeader, info) {
      const token = cookieHeader === undefined ? undefined : app.parseCookie(cookieHeader)[sessionCookie];
      const signedIn = token === undefined ? null : await validateSession(ctx, token);
      if (signedIn) await signOut(ctx, signedIn, info);
      // The same attributes as when it was set (Domain included, with LATCHKEY_COOKIE_DOMAIN), or the browser keeps it.
      const clear = { ...cookieOptions(config, "session", 0), secure: config.secureCookies };
      return token === undefined ? [] : [app.serializeCookie(sessionCookie, "", clear)];
    },
  });
  app.decorate("oidc", oidc);
  app.addHook("onClose", async () => oidc.settled());

  // A callback hook, not an async one: every request passes here, and all but the provider's go on at once (no promise
  // per request on the hot path, issue 10).
  app.addHook("onRequest", (request, reply, done) => {
    const path = request.url.split("?")[0] ?? "";
    if (!isProviderPath(path)) return done();
    oidc.provider().then((provider) => {
      // The provider builds URLs and decides cookie security from these headers (provider.proxy): they are set here
      // from LATCHKEY_PUBLIC_URL and the client address Fastify trusts, never taken from the request.
      const headers = request.raw.headers;
      headers["x-forwarded-proto"] = config.publicUrl.protocol.replace(":", "");
      headers["x-forwarded-host"] = config.publicUrl.host;
      headers["x-forwarded-for"] = request.ip;
      reply.raw.setHeader("Content-Security-Policy", PROVIDER_CSP);
      reply.hijack();
      provider.callback()(request.raw, reply.raw);
      done();
    }, done);
  });

  const returnHere = (uid: string): string => pathTo("oidcInteraction", { uid });

  app.get<{ Params: { uid: string } }>(routes.oidcInteraction, async (request, reply) => {
    const { uid } = request.params;
    if (!UID.test(uid)) return expired(reply);
    const outcome = await oidc.interaction({ req: request.raw, res: reply.raw, uid, signedIn: request.signedIn });
    switch (outcome.kind) {
      case "expired":
        return expired(reply);
      case "sign_in":
        return reply.redirect(pathTo("login", {}, { return_to: returnHere(uid) }), 303);
      case "set_up_app":
        return reply.redirect(pathTo("twoFactor", {}, { return_to: returnHere(uid) }), 303);
      case "sign_in_again":
        return reply.html(signInAgainPage(request, reply, uid, outcome.clientName, outcome.reason));
      case "continue":
        return reply.redirect(outcome.location, 303);
    }
  });

  // "Sign out and sign in again" (prompt=login, max_age, or the auth app asked for): the session ends here and the
  // sign-in comes back to the interaction.
  app.post<{ Params: { uid: string } }>(routes.oidcInteractionReauth, async (request, reply) => {
    parseBody(formSchema({}), request.body);
    const { uid } = request.params;
    // Only for a sign-in request this browser really has open: nobody is signed out by a made-up address.
    if (!UID.test(uid) || !(await oidc.isLiveInteraction({ req: request.raw, res: reply.raw, uid }))) return expired(reply);
    if (request.signedIn) {
      await signOut(ctx, request.signedIn, requestInfo(request));
      oidc.requestSweep();
    }
    clearCookie(reply, config, "session");
    return reply.redirect(pathTo("login", {}, { return_to: returnHere(uid) }), 303);
  });

  function signInAgainPage(
    request: FastifyRequest,
    reply: FastifyReply,
    uid: string,
    clientName: string,
    reason: "prompt_login" | "max_age" | "auth_app",
  ): ReturnType<typeof oidcSignInAgainPage> {
    const csrf = csrfToken(request, reply, config);
    const me = request.signedIn;
    return oidcSignInAgainPage({
      ...chrome,
      ...(me ? { signedIn: { email: me.user.email, accountName: me.account.name, csrf } } : {}),
      clientName,
      reason,
      csrf,
      action: pathTo("oidcInteractionReauth", { uid }),
    });
  }

  function expired(reply: FastifyReply): FastifyReply {
    return renderFailurePage(reply, config.productName, {
      reason: "oidc_interaction_expired",
      message: "This sign-in request has expired or was started in another browser. Go back to the application and sign in again.",
    });
  }
}
