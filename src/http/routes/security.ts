import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import type { SignedIn } from "../../auth/sessions.js";
import { policyOverview, setTwoFactorPolicy } from "../../team/policy.js";
import { showSso } from "../../team/sso.js";
import { routes, pathTo } from "../../paths.js";
import { adminsOnly, signedInOf } from "../access.js";
import { apiRoute } from "../api-operations.js";
import { settingsChrome } from "../chrome.js";
import { formSchema, noticeFrom, parseBody } from "../input.js";
import { failureError, renderFailure, type Failure } from "../reply.js";
import { requestInfo } from "../request-info.js";
import { securityPage } from "../views/security.js";

const policySchema = z.enum(["email_link", "auth_app_required"], { message: 'must be "email_link" or "auth_app_required"' });
const notices = {
  on: "The auth app is now required. Members without it were emailed and will set it up on their next request.",
  off: "The auth app is no longer required.",
} as const;

/** Account Settings → Security: the two-factor policy ("Require auth app for all team members"), page and API. */
export function securityRoutes(app: FastifyInstance, ctx: AppContext): void {
  async function renderSecurity(request: FastifyRequest, reply: FastifyReply, me: SignedIn, failure?: Failure): Promise<FastifyReply> {
    const notice = failure ? undefined : noticeFrom(notices, request);
    const page = securityPage({
      ...settingsChrome(ctx, request, reply, me),
      overview: await policyOverview(ctx, me),
      sso: await showSso(ctx, me.account.id),
      ...(notice ? { notice } : {}),
      ...(failure ? { error: failure.message } : {}),
    });
    return failure ? renderFailure(reply, failure, page) : reply.html(page);
  }

  app.get(routes.security, adminsOnly, async (request, reply) => renderSecurity(request, reply, signedInOf(request)));

  app.post(routes.securityPolicy, adminsOnly, async (request, reply) => {
    const me = signedInOf(request);
    const form = parseBody(formSchema({ policy: policySchema }), request.body);
    const result = await setTwoFactorPolicy(ctx, me, { policy: form.policy, info: requestInfo(request) });
    if (!result.ok) return renderSecurity(request, reply, me, result);
    return reply.redirect(pathTo("security", {}, { notice: form.policy === "auth_app_required" ? "on" : "off" }), 303);
  });

  apiRoute(
    app,
    {
      method: "GET",
      route: "apiPolicy",
      operationId: "getPolicy",
      tag: "Team",
      summary: "The account's two-factor policy and whom it would affect (admins).",
      access: "admin",
      ok: {
        status: 200,
        description: "The policy.",
        schema: z.object({
          policy: policySchema,
          canRequire: z.boolean().describe("Whether this admin may turn the requirement on (only with their own auth app)"),
          membersWithoutAuthApp: z.number().int(),
          ssoMembers: z.number().int().describe("Exempt: their provider handles two-factor"),
          passwordMembers: z.number().int(),
        }),
      },
      errors: [],
    },
    async (request, reply) => reply.send(await policyOverview(ctx, signedInOf(request))),
  );

  apiRoute(
    app,
    {
      method: "PUT",
      route: "apiPolicy",
      operationId: "setPolicy",
      tag: "Team",
      summary: "Require the auth app for all team members, or stop requiring it (admins; requiring needs the admin's own auth app).",
      access: "admin",
      body: z.object({ policy: policySchema }).strict(),
      ok: {
        status: 200,
        description: "Set; `notified` members were emailed.",
        schema: z.object({ policy: policySchema, notified: z.number().int() }),
      },
      errors: ["policy_requires_auth_app"],
    },
    async (request, reply, { body }) => {
      const result = await setTwoFactorPolicy(ctx, signedInOf(request), { policy: body.policy, info: requestInfo(request) });
      if (!result.ok) throw failureError(result);
      return reply.send({ policy: body.policy, notified: result.value.notified });
    },
  );
}
