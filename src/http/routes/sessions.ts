import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { passwordLoginFactors } from "../../auth/fresh-proof.js";
import { endOtherSessions, endOwnSession, listOwnSessions } from "../../auth/session-list.js";
import { LatchkeyError } from "../../errors.js";
import { routes, pathTo } from "../../paths.js";
import { signedInOf, signedInOnly } from "../access.js";
import { apiRoute, isoTime } from "../api-operations.js";
import { settingsChrome } from "../chrome.js";
import { clearCookie } from "../cookies.js";
import { formSchema, idSchema, noticeFrom, parseBody } from "../input.js";
import { failureError, renderFailure, renderFailurePage, type Failure } from "../reply.js";
import { requestInfo } from "../request-info.js";
import { sessionsPage } from "../views/sessions.js";
import { confirmPasswordPage } from "../views/settings.js";

const notices = {
  signed_out: "That session is signed out.",
  signed_out_others: "Every other session is signed out.",
} as const;

const NOT_FOUND = "You have no session with that id. It may have ended already.";

/** A path id that is not an id names no session: 404 before any query, the same answer as another person's session. */
function sessionIdOf(params: unknown): string {
  const id = (params as { id?: unknown }).id;
  if (!idSchema.safeParse(id).success) throw new LatchkeyError("session_not_found", NOT_FOUND);
  return id as string;
}

const sessionSchema = z.object({
  id: z.string().describe("The session's id (not its token: it signs nobody in)"),
  current: z.boolean().describe("The session making this request"),
  device: z.string().describe('Browser and system, e.g. "Chrome 120 on macOS"'),
  ip: z.string().nullable(),
  method: z.enum(["email_link", "auth_app", "recovery_code", "sso"]).describe("What finished the sign-in"),
  createdAt: isoTime.describe("When the person signed in"),
  lastSeenAt: isoTime.describe("Last activity (recorded at most once a minute)"),
});

/** "Where you're signed in": the person's sessions, as a settings page and as the JSON API. */
export function sessionRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { config } = ctx;

  async function renderSessions(request: FastifyRequest, reply: FastifyReply, failure?: Failure): Promise<FastifyReply> {
    const me = signedInOf(request);
    const page = sessionsPage({
      ...settingsChrome(ctx, request, reply, me),
      sessions: await listOwnSessions(ctx, me),
      notice: failure ? undefined : noticeFrom(notices, request),
      error: failure?.message,
    });
    return failure ? renderFailure(reply, failure, page) : reply.html(page);
  }

  app.get(routes.sessions, signedInOnly, async (request, reply) => renderSessions(request, reply));

  app.post(routes.sessionSignOut, signedInOnly, async (request, reply) => {
    const me = signedInOf(request);
    parseBody(formSchema({}), request.body);
    const back = { href: pathTo("sessions"), label: "Back to your sessions" };
    const id = idSchema.safeParse((request.params as { id?: unknown }).id);
    // A message page, not the list: a page answering a made-up id never draws forms aimed at other ids.
    if (!id.success) return renderFailurePage(reply, config.productName, { reason: "session_not_found", message: NOT_FOUND }, back);
    const result = await endOwnSession(ctx, me, { sessionId: id.data, info: requestInfo(request) });
    if (!result.ok) return renderFailurePage(reply, config.productName, result, back);
    app.oidc.requestSweep();
    if (result.value.current) {
      clearCookie(reply, config, "session");
      return reply.redirect(pathTo("login", {}, { notice: "signed_out" }), 303);
    }
    return reply.redirect(pathTo("sessions", {}, { notice: "signed_out" }), 303);
  });

  app.post(routes.sessionsSignOutOthers, signedInOnly, async (request, reply) => {
    const me = signedInOf(request);
    parseBody(formSchema({}), request.body);
    const result = await endOtherSessions(ctx, me, requestInfo(request));
    if (!result.ok) {
      const login = passwordLoginFactors(me);
      if (!login.ok) return renderSessions(request, reply, result);
      // The password, then back to this page to press the button again.
      return renderFailure(
        reply,
        result,
        confirmPasswordPage({ ...settingsChrome(ctx, request, reply, me), next: pathTo("sessions"), reason: result.message }),
      );
    }
    app.oidc.requestSweep();
    return reply.redirect(pathTo("sessions", {}, { notice: "signed_out_others" }), 303);
  });

  apiRoute(
    app,
    {
      method: "GET",
      route: "apiSessions",
      operationId: "listSessions",
      tag: "Session",
      summary: "Where the signed-in person is signed in: each of their sessions, this one first.",
      access: "signed_in",
      ok: {
        status: 200,
        description: "The person's live sessions, in every account.",
        schema: z.object({ sessions: z.array(sessionSchema) }),
      },
      errors: [],
    },
    async (request, reply) => {
      const sessions = await listOwnSessions(ctx, signedInOf(request));
      return reply.send({
        sessions: sessions.map((s) => ({
          id: s.id,
          current: s.current,
          device: s.device,
          ip: s.ip,
          method: s.method,
          createdAt: new Date(s.createdAt).toISOString(),
          lastSeenAt: new Date(s.lastSeenAt).toISOString(),
        })),
      });
    },
  );

  apiRoute(
    app,
    {
      method: "DELETE",
      route: "apiSessionById",
      operationId: "endSession",
      tag: "Session",
      summary: "Signs one of the person's sessions out, on every instance at once (the calling one too: that is signing out).",
      description:
        "Applications signed in through that session are signed out too (back-channel logout). Another person's session id answers 404 `session_not_found`, like an id that does not exist.",
      access: "signed_in",
      ok: { status: 204, description: "Ended." },
      errors: ["session_not_found"],
    },
    async (request, reply) => {
      const result = await endOwnSession(ctx, signedInOf(request), { sessionId: sessionIdOf(request.params), info: requestInfo(request) });
      if (!result.ok) throw failureError(result);
      app.oidc.requestSweep();
      if (result.value.current) clearCookie(reply, config, "session");
      return reply.code(204).send();
    },
  );
}
