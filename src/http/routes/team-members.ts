import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import type { SignedIn } from "../../auth/sessions.js";
import { LatchkeyError } from "../../errors.js";
import { changeRole, countTeamMembers, listTeamMembers, memberForRemoval, removeMember } from "../../team/members.js";
import { inviteMember, listPendingInvitations, resendInvitation, revokeInvitation } from "../../team/invitations.js";
import { routes, pathTo } from "../../paths.js";
import { adminsOnly, signedInOf, signedInOnly } from "../access.js";
import { apiRoute, isoTime, okSchema, roleSchema } from "../api-operations.js";
import { settingsChrome } from "../chrome.js";
import { formSchema, idSchema, noticeFrom, parseBody } from "../input.js";
import { failureError, renderFailure, type Failure } from "../reply.js";
import { requestInfo } from "../request-info.js";
import { removeMemberPage, teamPage } from "../views/team-members.js";

const memberSchema = z.object({
  id: z.string(),
  name: z.string(),
  email: z.string(),
  role: roleSchema,
  twoFactor: z.object({ method: z.enum(["email_link", "auth_app", "sso"]) }),
  status: z.literal("active"),
  lastSignInAt: isoTime.nullable(),
});
const invitationSchema = z.object({ id: z.string(), email: z.string(), role: roleSchema, expiresAt: isoTime, expired: z.boolean() });

/** `?page=` of Team Members: a page number from 1 (a page past the end shows the last page). */
const teamListQuery = z.object({
  page: z
    .string()
    .regex(/^[1-9][0-9]{0,5}$/, "must be a page number: a whole number from 1")
    .optional(),
});

const notices = {
  invited: "Invitation sent.",
  resent: "A new invitation link was sent; the old one no longer works.",
  revoked: "Invitation revoked.",
  role: "Role changed.",
  removed: "Member removed and signed out of this account.",
} as const;

/** A path id that is not an id names nobody: 404 before any query (PostgreSQL would refuse e.g. a NUL byte with a 500). */
function memberIdOf(params: { userId: string }): string {
  if (!idSchema.safeParse(params.userId).success) throw new LatchkeyError("member_not_found", "There is no such member in this account.");
  return params.userId;
}

function invitationIdOf(params: { id: string }): string {
  if (!idSchema.safeParse(params.id).success)
    throw new LatchkeyError("invitation_not_found", "There is no open invitation with that id in this account.");
  return params.id;
}

const actorOf = (me: SignedIn): { userId: string; name: string; accountId: string; isAdmin: boolean } => ({
  userId: me.user.id,
  name: me.user.name,
  accountId: me.account.id,
  isAdmin: me.role === "admin",
});

/** A domain result's value, or its failure thrown for the JSON API. */
function valueOf<T>(result: { ok: true; value: T } | ({ ok: false } & Failure)): T {
  if (!result.ok) throw failureError(result);
  return result.value;
}

function memberJson(m: Awaited<ReturnType<typeof listTeamMembers>>[number]): z.infer<typeof memberSchema> {
  return {
    id: m.userId,
    name: m.name,
    email: m.email,
    role: m.role,
    twoFactor: { method: m.method },
    status: "active" as const,
    lastSignInAt: m.lastSignInAt === null ? null : new Date(m.lastSignInAt).toISOString(),
  };
}

/** Team Members: the list with each member's 2FA method, invitations, roles and removal; pages and the JSON API. */
export function teamMemberRoutes(app: FastifyInstance, ctx: AppContext): void {
  async function renderTeam(
    request: FastifyRequest,
    reply: FastifyReply,
    me: SignedIn,
    extra: { notice?: string; inviteEmail?: string; page?: number } = {},
    failure?: Failure,
  ): Promise<FastifyReply> {
    const pageSize = ctx.config.limits.teamMembersPageSize;
    const count = await countTeamMembers(ctx, me.account.id);
    const pages = Math.max(1, Math.ceil(count.total / pageSize));
    // A page past the end (members were removed meanwhile) shows the last one.
    const number = Math.min(extra.page ?? 1, pages);
    const [members, invitations] = await Promise.all([
      listTeamMembers(ctx, me.account.id, { limit: pageSize, offset: (number - 1) * pageSize }),
      // Invitations are listed once, after the first page's members.
      me.role === "admin" && number === 1 ? listPendingInvitations(ctx, me.account.id) : Promise.resolve([]),
    ]);
    const errors = failure ? (extra.inviteEmail !== undefined ? { inviteError: failure.message } : { error: failure.message }) : {};
    const page = teamPage({
      ...settingsChrome(ctx, request, reply, me),
      members,
      adminCount: count.admins,
      list: { page: number, pages, total: count.total, first: (number - 1) * pageSize + 1 },
      invitations,
      youId: me.user.id,
      ...extra,
      ...errors,
    });
    return failure ? renderFailure(reply, failure, page) : reply.html(page);
  }

  // Members who are not admins see the list read-only (names, roles, 2FA methods), as in the seed's product.
  app.get(routes.team, signedInOnly, async (request, reply) => {
    const notice = noticeFrom(notices, request);
    const { page } = parseBody(teamListQuery, { page: (request.query as Record<string, unknown>)["page"] });
    return renderTeam(request, reply, signedInOf(request), { ...(notice ? { notice } : {}), ...(page ? { page: Number(page) } : {}) });
  });

  app.post(routes.teamInvitations, adminsOnly, async (request, reply) => {
    const me = signedInOf(request);
    const form = parseBody(formSchema({ email: z.string().max(4096), role: roleSchema }), request.body);
    const result = await inviteMember(ctx, actorOf(me), { email: form.email, role: form.role, info: requestInfo(request) });
    if (!result.ok) return renderTeam(request, reply, me, { inviteEmail: form.email.slice(0, 254) }, result);
    return reply.redirect(pathTo("team", {}, { notice: "invited" }), 303);
  });

  app.post<{ Params: { id: string } }>(routes.teamInvitationResend, adminsOnly, async (request, reply) => {
    const me = signedInOf(request);
    parseBody(formSchema({}), request.body);
    const result = await resendInvitation(ctx, actorOf(me), { invitationId: invitationIdOf(request.params), info: requestInfo(request) });
    if (!result.ok) return renderTeam(request, reply, me, {}, result);
    return reply.redirect(pathTo("team", {}, { notice: "resent" }), 303);
  });

  app.post<{ Params: { id: string } }>(routes.teamInvitationRevoke, adminsOnly, async (request, reply) => {
    const me = signedInOf(request);
    parseBody(formSchema({}), request.body);
    const result = await revokeInvitation(ctx, actorOf(me), { invitationId: invitationIdOf(request.params), info: requestInfo(request) });
    if (!result.ok) return renderTeam(request, reply, me, {}, result);
    return reply.redirect(pathTo("team", {}, { notice: "revoked" }), 303);
  });

  app.post<{ Params: { userId: string } }>(routes.teamMemberRole, adminsOnly, async (request, reply) => {
    const me = signedInOf(request);
    const form = parseBody(formSchema({ role: roleSchema }), request.body);
    const result = await changeRole(ctx, me, { userId: memberIdOf(request.params), role: form.role, info: requestInfo(request) });
    if (!result.ok) return renderTeam(request, reply, me, {}, result);
    return reply.redirect(pathTo("team", {}, { notice: "role" }), 303);
  });

  app.get<{ Params: { userId: string } }>(routes.teamMemberRemove, adminsOnly, async (request, reply) => {
    const me = signedInOf(request);
    const found = await memberForRemoval(ctx, me.account.id, memberIdOf(request.params));
    if (!found) throw new LatchkeyError("member_not_found", "There is no such member in this account.");
    return reply.html(removeMemberPage({ ...settingsChrome(ctx, request, reply, me), ...found }));
  });

  app.post<{ Params: { userId: string } }>(routes.teamMemberRemove, adminsOnly, async (request, reply) => {
    const me = signedInOf(request);
    parseBody(formSchema({}), request.body);
    const result = await removeMember(ctx, me, { userId: memberIdOf(request.params), info: requestInfo(request) });
    if (!result.ok) return renderTeam(request, reply, me, {}, result);
    if (result.value.email === me.user.email) return reply.redirect(pathTo("login"), 303);
    return reply.redirect(pathTo("team", {}, { notice: "removed" }), 303);
  });

  const memberIdErrors = ["member_not_found", "last_admin"] as const;

  apiRoute(
    app,
    {
      method: "GET",
      route: "apiTeamMembers",
      operationId: "listTeamMembers",
      tag: "Team",
      summary: "Members of the account in use, each with role and two-factor method (Email link, Auth app or SSO).",
      access: "signed_in",
      ok: { status: 200, description: "Members.", schema: z.object({ members: z.array(memberSchema) }) },
      errors: [],
    },
    async (request, reply) => reply.send({ members: (await listTeamMembers(ctx, signedInOf(request).account.id)).map(memberJson) }),
  );

  apiRoute(
    app,
    {
      method: "PATCH",
      route: "apiTeamMember",
      operationId: "changeMemberRole",
      tag: "Team",
      summary: "Change a member's role (admins). The last admin cannot be demoted.",
      access: "admin",
      body: z.object({ role: roleSchema }).strict(),
      ok: { status: 200, description: "Changed.", schema: okSchema },
      errors: [...memberIdErrors],
    },
    async (request, reply, { body }) => {
      const params = request.params as { userId: string };
      valueOf(await changeRole(ctx, signedInOf(request), { userId: memberIdOf(params), role: body.role, info: requestInfo(request) }));
      return reply.send({ ok: true });
    },
  );

  apiRoute(
    app,
    {
      method: "DELETE",
      route: "apiTeamMember",
      operationId: "removeMember",
      tag: "Team",
      summary: "Remove a member (admins): signs them out of the account at once; deletes the login if it was their only account.",
      access: "admin",
      ok: {
        status: 200,
        description: "Removed; `loginDeleted` says whether the login went too.",
        schema: z.object({ ok: z.literal(true), loginDeleted: z.boolean() }),
      },
      errors: [...memberIdErrors],
    },
    async (request, reply) => {
      const params = request.params as { userId: string };
      const result = valueOf(await removeMember(ctx, signedInOf(request), { userId: memberIdOf(params), info: requestInfo(request) }));
      return reply.send({ ok: true, loginDeleted: result.loginDeleted });
    },
  );

  apiRoute(
    app,
    {
      method: "GET",
      route: "apiTeamInvitations",
      operationId: "listInvitations",
      tag: "Team",
      summary: "Open invitations of the account (admins).",
      access: "admin",
      ok: { status: 200, description: "Invitations.", schema: z.object({ invitations: z.array(invitationSchema) }) },
      errors: [],
    },
    async (request, reply) => {
      const list = await listPendingInvitations(ctx, signedInOf(request).account.id);
      return reply.send({
        invitations: list.map((i) => ({
          id: i.id,
          email: i.email,
          role: i.role,
          expiresAt: new Date(i.expiresAt).toISOString(),
          expired: i.expired,
        })),
      });
    },
  );

  apiRoute(
    app,
    {
      method: "POST",
      route: "apiTeamInvitations",
      operationId: "inviteMember",
      tag: "Team",
      summary: "Invite an email with a role (admins); the invitation email carries a 7-day single-use link.",
      access: "admin",
      body: z.object({ email: z.string().max(4096), role: roleSchema }).strict(),
      ok: { status: 201, description: "Invited.", schema: z.object({ id: z.string(), email: z.string(), emailed: z.boolean() }) },
      errors: ["email_invalid", "already_member"],
    },
    async (request, reply, { body }) => {
      const result = valueOf(
        await inviteMember(ctx, actorOf(signedInOf(request)), { email: body.email, role: body.role, info: requestInfo(request) }),
      );
      return reply.code(201).send({ id: result.invitationId, email: result.email, emailed: result.emailed });
    },
  );

  apiRoute(
    app,
    {
      method: "POST",
      route: "apiTeamInvitationResend",
      operationId: "resendInvitation",
      tag: "Team",
      summary: "A new link for an open invitation (admins); the old link stops working.",
      access: "admin",
      ok: { status: 200, description: "Sent.", schema: z.object({ ok: z.literal(true), emailed: z.boolean() }) },
      errors: ["invitation_not_found"],
    },
    async (request, reply) => {
      const params = request.params as { id: string };
      const result = valueOf(
        await resendInvitation(ctx, actorOf(signedInOf(request)), { invitationId: invitationIdOf(params), info: requestInfo(request) }),
      );
      return reply.send({ ok: true, emailed: result.emailed });
    },
  );

  apiRoute(
    app,
    {
      method: "DELETE",
      route: "apiTeamInvitation",
      operationId: "revokeInvitation",
      tag: "Team",
      summary: "Revoke an open invitation (admins).",
      access: "admin",
      ok: { status: 200, description: "Revoked.", schema: okSchema },
      errors: ["invitation_not_found"],
    },
    async (request, reply) => {
      const params = request.params as { id: string };
      valueOf(
        await revokeInvitation(ctx, actorOf(signedInOf(request)), { invitationId: invitationIdOf(params), info: requestInfo(request) }),
      );
      return reply.send({ ok: true });
    },
  );
}
