import Fastify, { type FastifyInstance, type FastifyRequest, type HTTPMethods } from "fastify";
import cookie from "@fastify/cookie";
import formbody from "@fastify/formbody";
import type { AppContext } from "./context.js";
import type { Metrics } from "./observability/metrics.js";
import { stdoutLogStream, type LogStream } from "./observability/log-stream.js";
import { checkCsrf } from "./http/csrf.js";
import { errorHandler, sendError } from "./http/errors.js";
import { loadSession } from "./http/session-guard.js";
import { loadOperator } from "./http/operator-guard.js";
import { redactUrl } from "./http/request-info.js";
import { AfterResponse } from "./http/after-response.js";
import { apiRoutes } from "./http/routes/api.js";
import { devMailRoutes } from "./http/routes/dev-mail.js";
import { homeRoutes } from "./http/routes/home.js";
import { invitationRoutes } from "./http/routes/invitations.js";
import { loginRoutes } from "./http/routes/login.js";
import { ssoRoutes } from "./http/routes/sso.js";
import { openApiRoutes } from "./http/routes/openapi.js";
import { secondFactorRoutes } from "./http/routes/second-factor.js";
import { settingsRoutes } from "./http/routes/settings.js";
import { sessionRoutes } from "./http/routes/sessions.js";
import { emailChangeRoutes } from "./http/routes/email-change.js";
import { assetRoutes } from "./http/routes/assets.js";
import { teamMemberRoutes } from "./http/routes/team-members.js";
import { securityRoutes } from "./http/routes/security.js";
import { auditRoutes } from "./http/routes/audit.js";
import { accountRoutes } from "./http/routes/accounts.js";
import { supportRoutes } from "./http/routes/support.js";
import { passwordResetRoutes } from "./http/routes/password-reset.js";
import { operatorRoutes } from "./http/routes/operator.js";
import { oidcRoutes } from "./http/routes/oidc.js";
import { enforceTwoFactorPolicy } from "./http/policy-guard.js";
import { mustSetUpAuthApp } from "./team/policy.js";
import { checkAccess } from "./http/access.js";
import { registerHtmlReply } from "./http/reply.js";
import { registerApiOperations } from "./http/api-operations.js";
import { registerSecurityHeaders } from "./http/security-headers.js";
import { RequestLog } from "./http/hot-path.js";
import { registerLoadShedding } from "./http/load-shedding.js";
import { registerRequestId, requestIdOf } from "./http/request-id.js";
import { registerDrain } from "./http/drain.js";
import { registerRequestMetrics } from "./http/request-metrics.js";
import { healthRoutes } from "./http/routes/health.js";
import { registerRouteConfig, routeConfigOf } from "./http/route-config.js";

/** Tokens in paths are 43 characters; anything much longer is noise. */
const MAX_PATH_PARAM_LENGTH = 200;
/** The order methods are listed in an `Allow` header. */
const METHOD_ORDER = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/**
 * The methods the routes take at `path` (HEAD wherever GET is, as Fastify answers it), for a 405's `Allow` header;
 * none for a path no route takes. A part over the parameter length gets none: the router's lookup answers it with
 * its refusal, which is not a route. (A malformed %-escape never gets here: the router refuses it with a 400 first.)
 */
function methodsAt(app: FastifyInstance, path: string): string[] {
  if (!path.startsWith("/")) return [];
  if (path.split("/").some((part) => part.length > MAX_PATH_PARAM_LENGTH)) return [];
  const registered = new Set(app.latchkeyRoutes.map((route) => route.split(" ")[0] ?? ""));
  const allowed = new Set([...registered].filter((method) => app.findRoute({ method: method as HTTPMethods, url: path }) !== null));
  if (allowed.has("GET")) allowed.add("HEAD");
  return [...allowed].sort((a, b) => METHOD_ORDER.indexOf(a) - METHOD_ORDER.indexOf(b));
}

export interface BuildOptions {
  /** Show `/dev/mail` (only when mail goes to the outbox and the server is on loopback). */
  outboxDir?: string | undefined;
  logger?: boolean;
  /** Where log lines go (default stdout, written synchronously: observability/log-stream.ts): tests read them. */
  logStream?: LogStream;
}

/** The composition root: a Fastify app over an AppContext. No I/O happens here beyond registering routes. */
export async function buildApp(ctx: AppContext, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger:
      options.logger === false
        ? false
        : {
            level: ctx.config.logLevel,
            stream: options.logStream ?? stdoutLogStream(),
            redact: ["req.headers.cookie", "req.headers.authorization", 'res.headers["set-cookie"]'],
            // Fastify's own request fields, with the URL's tokens taken out (links stay live after they are logged).
            serializers: {
              req: (request: FastifyRequest) => ({
                method: request.method,
                url: redactUrl(request.url),
                host: request.host,
                remoteAddress: request.ip,
                remotePort: request.socket?.remotePort,
              }),
            },
          },
    // Each request's id (the caller's X-Request-Id when well-formed) is in each of its log lines and in its answer.
    genReqId: requestIdOf,
    // The session check and forward auth log their request lines at debug level (http/hot-path.ts).
    logController: new RequestLog(),
    // While shutting down, requests on open connections get our 503 (http/drain.ts), not Fastify's.
    return503OnClosing: false,
    bodyLimit: ctx.config.limits.bodyLimitBytes,
    // Fastify accepts a hop count too (documented), though its type omits it.
    trustProxy: ctx.config.trustProxy as boolean | string[],
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: MAX_PATH_PARAM_LENGTH },
    // The router's own refusals (a path part over maxParamLength, a broken %-escape) answer in our format, with a
    // stable code, instead of Fastify's bare JSON.
    frameworkErrors: (error, request, reply) => {
      const message =
        error.code === "FST_ERR_MAX_PARAM_LENGTH"
          ? "This address is not valid: a part of it is too long."
          : "This address is not valid: it has a malformed %-escape.";
      // No request hook runs for these: the request id is set here.
      reply.header("X-Request-Id", request.id);
      sendError(request, reply, "invalid_request", message);
    },
  });

  // First: every hook below reads the route's config through it.
  registerRouteConfig(app);
  await app.register(cookie);
  await app.register(formbody, { bodyLimit: ctx.config.limits.bodyLimitBytes });
  registerSecurityHeaders(app, ctx.config);
  registerRequestId(app);
  // Right after the headers, so a refused answer (shutting down, overloaded) carries them and nothing else runs for it.
  registerDrain(app);
  registerLoadShedding(app, ctx.config.limits);
  // Before any route is added: each route gets its duration recorder as it is registered. (Nothing when metrics are off.)
  registerRequestMetrics(app, ctx.metrics);
  app.decorate("latchkeyMetrics", ctx.metrics);

  // Every route's "METHOD /path", for the OpenAPI completeness test and for operators (`app.latchkeyRoutes`).
  const registered: string[] = [];
  app.decorate("latchkeyRoutes", registered);
  // Error pages are rendered far from the routes (error and not-found handlers): they read the name from here.
  app.decorate("latchkeyProductName", ctx.config.productName);
  app.decorate("latchkeyDependencyRetryAfterSeconds", ctx.config.limits.dependencyRetryAfterSeconds);
  app.addHook("onRoute", (route) => {
    for (const method of [route.method].flat()) if (method !== "HEAD") registered.push(`${method} ${route.url}`);
  });
  // Work routes run after their answer has gone out; closing the app waits for it. Mail it queued is sent right after.
  const afterResponse = new AfterResponse(app.log, () => ctx.queuedMail.wake());
  app.decorate("afterResponse", afterResponse);
  app.addHook("onClose", async () => afterResponse.settled());
  app.decorateRequest("signedIn", null);
  app.decorateRequest("operator", null);
  registerHtmlReply(app);
  registerApiOperations(app);
  app.decorateRequest("csrfCookieIssued", undefined);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split("?")[0] ?? "";
    const allowed = methodsAt(app, path);
    if (allowed.length === 0) return sendError(request, reply, "not_found", `There is nothing at ${request.method} ${path}.`);
    reply.header("Allow", allowed.join(", "));
    return sendError(request, reply, "method_not_allowed", `${path} does not take ${request.method}; it takes ${allowed.join(", ")}.`);
  });

  app.decorateRequest("mailQueuedBefore", null);
  // Callback hooks where nothing is awaited: no promise per request (issue 10).
  app.addHook("onSend", (request, reply, payload, done) => {
    // Every answer here is about someone's sign-in: never cache it anywhere.
    reply.header("Cache-Control", "no-store");
    reply.header("Pragma", "no-cache");
    // The handler is done (its transaction committed): mail it queued is sent now, once the answer is on its way,
    // rather than at the sender's next look. (A request running beside it may make this wake early; its own wakes too.)
    if (request.mailQueuedBefore !== null && request.mailQueuedBefore !== ctx.queuedMail.queued) {
      setImmediate(() => void ctx.queuedMail.wake());
    }
    done(null, payload);
  });
  // The default public URL says "localhost" while the server listens on 127.0.0.1: someone who opens the
  // address by IP would get cookies for another host name and forms refused by the origin check. Send page
  // requests over to the public URL instead (GET/HEAD only; nothing is lost).
  if (ctx.config.publicUrl.hostname === "localhost") {
    app.addHook("onRequest", (request, reply, done) => {
      const host = request.headers.host ?? "";
      // Probes are asked by address (a load balancer, an orchestrator) and must get their answer, not a redirect.
      if (routeConfigOf(request).probe) return done();
      if ((request.method === "GET" || request.method === "HEAD") && /^(127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$/.test(host)) {
        // Only the path and query are taken from the request: resolved as a URL, a path like "//evil.example/" would
        // name another host (an open redirect).
        const target = new URL(ctx.config.publicUrl.origin);
        const query = request.url.indexOf("?");
        target.pathname = query === -1 ? request.url : request.url.slice(0, query);
        target.search = query === -1 ? "" : request.url.slice(query);
        // An answer from a callback hook: done() is not called, so nothing else runs for the request.
        reply.redirect(target.href, 308);
        return undefined;
      }
      return done();
    });
  }
  app.addHook("preHandler", async (request, reply) => {
    // Before anything of the request can queue mail: the onSend hook compares.
    request.mailQueuedBefore = ctx.queuedMail.queued;
    // A request no route takes runs no handler and changes nothing: it answers 404 or 405, not a CSRF refusal.
    if (!request.is404) checkCsrf(request, ctx.config);
    if (routeConfigOf(request).access === "operator") {
      // The operator API: the bearer token and nothing else. No cookie is read, so no session is loaded (nor
      // touched, nor cleared) and no session rule applies.
      await loadOperator(ctx, request);
    } else {
      await loadSession(ctx, request, reply);
      // Runs on every request of a signed-in member, so a policy switched on applies to sessions already open. (Only
      // awaited when it applies: no extra promise on the session check's path, issue 10.)
      if (request.signedIn !== null && mustSetUpAuthApp(request.signedIn)) {
        const enforced = await enforceTwoFactorPolicy(ctx, request, reply);
        if (enforced) return enforced;
      }
    }
    // Then who may reach the route, as the route declared it (`access`).
    return checkAccess(ctx, request, reply);
  });

  loginRoutes(app, ctx);
  ssoRoutes(app, ctx);
  secondFactorRoutes(app, ctx);
  homeRoutes(app, ctx);
  settingsRoutes(app, ctx);
  sessionRoutes(app, ctx);
  emailChangeRoutes(app, ctx);
  teamMemberRoutes(app, ctx);
  securityRoutes(app, ctx);
  auditRoutes(app, ctx);
  accountRoutes(app, ctx);
  supportRoutes(app, ctx);
  passwordResetRoutes(app, ctx);
  assetRoutes(app);
  invitationRoutes(app, ctx);
  apiRoutes(app, ctx);
  operatorRoutes(app, ctx);
  openApiRoutes(app, ctx);
  // The OpenID Provider: its endpoints are handed over in an onRequest hook (after the canonical-host redirect above).
  oidcRoutes(app, ctx);
  if (options.outboxDir !== undefined) devMailRoutes(app, ctx, options.outboxDir);
  healthRoutes(app, ctx);
  return app;
}

declare module "fastify" {
  interface FastifyInstance {
    latchkeyRoutes: string[];
    /** `LATCHKEY_PRODUCT_NAME`, for pages rendered outside the routes (error pages). */
    latchkeyProductName: string;
    /** `Retry-After` when the database or Redis cannot be reached. */
    latchkeyDependencyRetryAfterSeconds: number;
    afterResponse: AfterResponse;
    /** `ctx.metrics`, for answers counted far from the routes (throttle refusals in http/errors.ts). */
    latchkeyMetrics: Metrics;
  }
  interface FastifyRequest {
    /** `ctx.queuedMail.queued` when the request reached its handler's hooks (null before): did it queue mail? */
    mailQueuedBefore: number | null;
  }
}
