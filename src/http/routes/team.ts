import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import type { SignedIn } from "../../auth/sessions.js";
import { LatchkeyError, type Result } from "../../errors.js";
import { decodeCursor, listAuditEvents } from "../../audit/log.js";
import { changeRole, listTeamMembers, memberForRemoval, removeMember } from "../../team/members.js";
import { inviteMember, listPendingInvitations, resendInvitation, revokeInvitation } from "../../team/invitations.js";
import { policyOverview, setTwoFactorPolicy } from "../../team/policy.js";
import { accountsOf, switchAccount } from "../../team/switch-account.js";
import { showSso } from "../../team/sso.js";
import { csrfToken } from "../csrf.js";
import { formSchema, parseBody } from "../input.js";
import { requestInfo } from "../request-info.js";
import { requireSignedIn } from "../session-guard.js";
import { statusByCode } from "../errors.js";
import type { SettingsChrome } from "../views/settings.js";
import { accountPickerPage, auditPage, helpPage, removeMemberPage, securityPage, teamPage } from "../views/team.js";
import { routes, pathTo } from "../../paths.js";

const roleSchema = z.enum(["admin", "member"], { message: 'must be "admin" or "member"' });
const idSchema = z.string().regex(/^[0-9a-f]{32}$/, "is not an id");
const policySchema = z.enum(["email_link", "auth_app_required"], { message: 'must be "email_link" or "auth_app_required"' });
const AUDIT_PAGE_SIZE = 50;
const AUDIT_MAX_PAGE_SIZE = 200;

const teamNotices = {
  invited: "Invitation sent.",
  resent: "A new invitation link was sent; the old one no longer works.",
  revoked: "Invitation revoked.",
  role: "Role changed.",
  removed: "Member removed and signed out of this account.",
} as const;
const securityNotices = { on: "The auth app is now required. Members without it were emailed and will set it up on their next request.", off: "The auth app is no longer required." } as const;

function pick<T extends Record<string, string>>(table: T, request: FastifyRequest): string | undefined {
  const code = (request.query as Record<string, unknown>)["notice"];
  return typeof code === "string" && code in table ? table[code as keyof T] : undefined;
}

/** A path id that is not an id names nobody: 404 before any query (PostgreSQL would refuse e.g. a NUL byte with a 500). */
function memberIdOf(params: { userId: string }): string {
  if (!idSchema.safeParse(params.userId).success) throw new LatchkeyError("member_not_found", "There is no such member in this account.");
  return params.userId;
}

function invitationIdOf(params: { id: string }): string {
  if (!idSchema.safeParse(params.id).success) throw new LatchkeyError("invitation_not_found", "There is no open invitation with that id in this account.");
  return params.id;
}

/** "YYYY-MM-DD" or an ISO date-time → epoch ms; undefined when empty; throws a 400 when malformed. */
function parseDate(name: string, value: string | undefined, endOfDay = false): number | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  const v = value.trim();
  const ms = /^\d{4}-\d{2}-\d{2}$/.test(v) ? Date.parse(`${v}T00:00:00Z`) + (endOfDay ? 86_400_000 : 0) : Date.parse(v);
  if (Number.isNaN(ms)) throw new LatchkeyError("invalid_request", `"${name}" must be a date like 2026-01-31 or an ISO date-time.`);
  return ms;
}

/** Team Members, Security (policy), Audit log, account switching and help: pages and the JSON API. */
export function teamRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { config } = ctx;
  const actorOf = (me: SignedIn): { userId: string; name: string; accountId: string; isAdmin: boolean } => ({ userId: me.user.id, name: me.user.name, accountId: me.account.id, isAdmin: me.role === "admin" });

  function chrome(request: FastifyRequest, reply: FastifyReply, me: SignedIn): SettingsChrome {
    return { productName: config.productName, signedIn: { email: me.user.email, accountName: me.account.name, csrf: csrfToken(request, reply, config) }, isAdmin: me.role === "admin" };
  }

  const send = (reply: FastifyReply, page: { value: string }, status = 200): FastifyReply => reply.status(status).type("text/html; charset=utf-8").send(page.value);

  function requireAdminPage(request: FastifyRequest, reply: FastifyReply): SignedIn | null {
    const me = requireSignedIn(request, reply);
    if (!me) return null;
    if (me.role !== "admin") throw new LatchkeyError("forbidden", "Only Account Admins can see or change this.");
    return me;
  }

  async function renderTeam(request: FastifyRequest, reply: FastifyReply, me: SignedIn, extra: { notice?: string; error?: string; inviteEmail?: string; inviteError?: string } = {}, status = 200): Promise<FastifyReply> {
    const [members, invitations] = await Promise.all([listTeamMembers(ctx, me.account.id), me.role === "admin" ? listPendingInvitations(ctx, me.account.id) : Promise.resolve([])]);
    return send(reply, teamPage({ ...chrome(request, reply, me), members, invitations, youId: me.user.id, ...extra }), status);
  }

  // Members who are not admins see the list read-only (names, roles, 2FA methods), as in the seed's product.
  app.get(routes.team, async (request, reply) => {
    const me = requireSignedIn(request, reply);
    if (!me) return reply;
    return renderTeam(request, reply, me, { ...(pick(teamNotices, request) ? { notice: pick(teamNotices, request)! } : {}) });
  });

  app.post(routes.teamInvitations, async (request, reply) => {
    const me = requireAdminPage(request, reply);
    if (!me) return reply;
    const form = parseBody(formSchema({ email: z.string().max(4096), role: roleSchema }), request.body);
    const result = await inviteMember(ctx, actorOf(me), { email: form.email, role: form.role, info: requestInfo(request) });
    if (!result.ok) return renderTeam(request, reply, me, { inviteEmail: form.email.slice(0, 254), inviteError: result.message }, statusByCode[result.reason]);
    return reply.redirect(pathTo("team", {}, { notice: "invited" }), 303);
  });

  app.post<{ Params: { id: string } }>(routes.teamInvitationResend, async (request, reply) => {
    const me = requireAdminPage(request, reply);
    if (!me) return reply;
    parseBody(formSchema({}), request.body);
    const result = await resendInvitation(ctx, actorOf(me), { invitationId: invitationIdOf(request.params), info: requestInfo(request) });
    if (!result.ok) return renderTeam(request, reply, me, { error: result.message }, statusByCode[result.reason]);
    return reply.redirect(pathTo("team", {}, { notice: "resent" }), 303);
  });

  app.post<{ Params: { id: string } }>(routes.teamInvitationRevoke, async (request, reply) => {
    const me = requireAdminPage(request, reply);
    if (!me) return reply;
    parseBody(formSchema({}), request.body);
    const result = await revokeInvitation(ctx, actorOf(me), { invitationId: invitationIdOf(request.params), info: requestInfo(request) });
    if (!result.ok) return renderTeam(request, reply, me, { error: result.message }, statusByCode[result.reason]);
    return reply.redirect(pathTo("team", {}, { notice: "revoked" }), 303);
  });

  app.post<{ Params: { userId: string } }>(routes.teamMemberRole, async (request, reply) => {
    const me = requireAdminPage(request, reply);
    if (!me) return reply;
    const form = parseBody(formSchema({ role: roleSchema }), request.body);
    const result = await changeRole(ctx, me, { userId: memberIdOf(request.params), role: form.role, info: requestInfo(request) });
    if (!result.ok) return renderTeam(request, reply, me, { error: result.message }, statusByCode[result.reason]);
    return reply.redirect(pathTo("team", {}, { notice: "role" }), 303);
  });

  app.get<{ Params: { userId: string } }>(routes.teamMemberRemove, async (request, reply) => {
    const me = requireAdminPage(request, reply);
    if (!me) return reply;
    const found = await memberForRemoval(ctx, me.account.id, memberIdOf(request.params));
    if (!found) throw new LatchkeyError("member_not_found", "There is no such member in this account.");
    return send(reply, removeMemberPage({ ...chrome(request, reply, me), ...found }));
  });

  app.post<{ Params: { userId: string } }>(routes.teamMemberRemove, async (request, reply) => {
    const me = requireAdminPage(request, reply);
    if (!me) return reply;
    parseBody(formSchema({}), request.body);
    const result = await removeMember(ctx, me, { userId: memberIdOf(request.params), info: requestInfo(request) });
    if (!result.ok) return renderTeam(request, reply, me, { error: result.message }, statusByCode[result.reason]);
    if (result.value.email === me.user.email) return reply.redirect(pathTo("login"), 303);
    return reply.redirect(pathTo("team", {}, { notice: "removed" }), 303);
  });

  app.get(routes.security, async (request, reply) => {
    const me = requireAdminPage(request, reply);
    if (!me) return reply;
    const notice = pick(securityNotices, request);
    return send(reply, securityPage({ ...chrome(request, reply, me), overview: await policyOverview(ctx, me), sso: await showSso(ctx, me.account.id), ...(notice ? { notice } : {}) }));
  });

  app.post(routes.securityPolicy, async (request, reply) => {
    const me = requireAdminPage(request, reply);
    if (!me) return reply;
    const form = parseBody(formSchema({ policy: policySchema }), request.body);
    const result = await setTwoFactorPolicy(ctx, me, { policy: form.policy, info: requestInfo(request) });
    if (!result.ok) return send(reply, securityPage({ ...chrome(request, reply, me), overview: await policyOverview(ctx, me), sso: await showSso(ctx, me.account.id), error: result.message }), statusByCode[result.reason]);
    return reply.redirect(`/settings/security?notice=${form.policy === "auth_app_required" ? "on" : "off"}`, 303);
  });

  const auditQuery = z
    .object({
      member: z.union([z.literal(""), idSchema]).optional(),
      event: z.string().max(64).regex(/^[a-z_.]*$/, "may contain only a-z, _ and .").optional(),
      from: z.string().max(40).optional(),
      to: z.string().max(40).optional(),
      cursor: z.string().max(200).optional(),
      limit: z.string().regex(/^\d{1,3}$/, "must be a whole number").optional(),
    })
    .strict();

  async function auditFor(me: SignedIn, raw: unknown): Promise<{ result: Awaited<ReturnType<typeof listAuditEvents>>; q: z.infer<typeof auditQuery>; limit: number }> {
    const q = parseBody(auditQuery, raw);
    if (q.cursor && !decodeCursor(q.cursor)) throw new LatchkeyError("invalid_request", '"cursor" is not valid: pass the nextCursor of the previous page as it is.');
    const limit = Math.min(Math.max(Number(q.limit ?? AUDIT_PAGE_SIZE), 1), AUDIT_MAX_PAGE_SIZE);
    const result = await listAuditEvents(ctx, {
      accountId: me.account.id,
      userId: q.member || undefined,
      type: q.event || undefined,
      fromMs: parseDate("from", q.from),
      toMs: parseDate("to", q.to, true),
      cursor: q.cursor,
      limit,
    });
    return { result, q, limit };
  }

  app.get(routes.audit, async (request, reply) => {
    const me = requireAdminPage(request, reply);
    if (!me) return reply;
    const { result, q } = await auditFor(me, request.query);
    const filters = { member: q.member ?? "", event: q.event ?? "", from: q.from ?? "", to: q.to ?? "" };
    const nextHref = result.nextCursor ? `/settings/audit?${new URLSearchParams({ ...filters, cursor: result.nextCursor }).toString()}` : null;
    return send(reply, auditPage({ ...chrome(request, reply, me), entries: result.entries, nextHref, filters, members: await listTeamMembers(ctx, me.account.id) }));
  });

  app.get(routes.accounts, async (request, reply) => {
    const me = requireSignedIn(request, reply);
    if (!me) return reply;
    return send(reply, accountPickerPage({ productName: config.productName, signedIn: chrome(request, reply, me).signedIn, accounts: await accountsOf(ctx, me) }));
  });

  app.post(routes.accountsSwitch, async (request, reply) => {
    const me = requireSignedIn(request, reply);
    if (!me) return reply;
    const form = parseBody(formSchema({ accountId: idSchema }), request.body);
    const result = await switchAccount(ctx, me, { accountId: form.accountId, info: requestInfo(request) });
    if (!result.ok) throw new LatchkeyError(result.reason, result.message);
    return reply.redirect(pathTo("home"), 303);
  });

  app.get(routes.help, async (request, reply) => {
    const me = request.signedIn;
    return send(reply, helpPage({ productName: config.productName, signedIn: me ? chrome(request, reply, me).signedIn : undefined }));
  });

  // ---- JSON API ----
  function requireAdminApi(request: FastifyRequest, reply: FastifyReply): SignedIn {
    const me = requireSignedIn(request, reply);
    if (!me) throw new LatchkeyError("unauthenticated", "Sign in first.");
    if (me.role !== "admin") throw new LatchkeyError("forbidden", "Only Account Admins can do this.");
    return me;
  }
  const orThrow = <T>(result: Result<T>): T => {
    if (!result.ok) throw new LatchkeyError(result.reason, result.message, result.details);
    return result.value;
  };
  const memberJson = (m: Awaited<ReturnType<typeof listTeamMembers>>[number]): Record<string, unknown> => ({
    id: m.userId,
    name: m.name,
    email: m.email,
    role: m.role,
    twoFactor: { method: m.method },
    status: "active",
    lastSignInAt: m.lastSignInAt === null ? null : new Date(m.lastSignInAt).toISOString(),
  });

  app.get(routes.apiTeamMembers, async (request, reply) => {
    const me = requireSignedIn(request, reply);
    if (!me) return reply;
    return reply.send({ members: (await listTeamMembers(ctx, me.account.id)).map(memberJson) });
  });

  app.patch<{ Params: { userId: string } }>(routes.apiTeamMember, async (request, reply) => {
    const me = requireAdminApi(request, reply);
    const body = parseBody(z.object({ role: roleSchema }).strict(), request.body);
    orThrow(await changeRole(ctx, me, { userId: memberIdOf(request.params), role: body.role, info: requestInfo(request) }));
    return reply.send({ ok: true });
  });

  app.delete<{ Params: { userId: string } }>(routes.apiTeamMember, async (request, reply) => {
    const me = requireAdminApi(request, reply);
    const result = orThrow(await removeMember(ctx, me, { userId: memberIdOf(request.params), info: requestInfo(request) }));
    return reply.send({ ok: true, loginDeleted: result.loginDeleted });
  });

  app.get(routes.apiTeamInvitations, async (request, reply) => {
    const me = requireAdminApi(request, reply);
    const list = await listPendingInvitations(ctx, me.account.id);
    return reply.send({ invitations: list.map((i) => ({ id: i.id, email: i.email, role: i.role, expiresAt: new Date(i.expiresAt).toISOString(), expired: i.expired })) });
  });

  app.post(routes.apiTeamInvitations, async (request, reply) => {
    const me = requireAdminApi(request, reply);
    const body = parseBody(z.object({ email: z.string().max(4096), role: roleSchema }).strict(), request.body);
    const result = orThrow(await inviteMember(ctx, actorOf(me), { email: body.email, role: body.role, info: requestInfo(request) }));
    return reply.status(201).send({ id: result.invitationId, email: result.email, emailed: result.emailed });
  });

  app.post<{ Params: { id: string } }>(routes.apiTeamInvitationResend, async (request, reply) => {
    const me = requireAdminApi(request, reply);
    const result = orThrow(await resendInvitation(ctx, actorOf(me), { invitationId: invitationIdOf(request.params), info: requestInfo(request) }));
    return reply.send({ ok: true, emailed: result.emailed });
  });

  app.delete<{ Params: { id: string } }>(routes.apiTeamInvitation, async (request, reply) => {
    const me = requireAdminApi(request, reply);
    orThrow(await revokeInvitation(ctx, actorOf(me), { invitationId: invitationIdOf(request.params), info: requestInfo(request) }));
    return reply.send({ ok: true });
  });

  app.get(routes.apiPolicy, async (request, reply) => {
    const me = requireAdminApi(request, reply);
    return reply.send(await policyOverview(ctx, me));
  });

  app.put(routes.apiPolicy, async (request, reply) => {
    const me = requireAdminApi(request, reply);
    const body = parseBody(z.object({ policy: policySchema }).strict(), request.body);
    const result = orThrow(await setTwoFactorPolicy(ctx, me, { policy: body.policy, info: requestInfo(request) }));
    return reply.send({ policy: body.policy, notified: result.notified });
  });

  app.get(routes.apiAudit, async (request, reply) => {
    const me = requireAdminApi(request, reply);
    const { result } = await auditFor(me, request.query);
    return reply.send({
      events: result.entries.map((e) => ({
        id: e.id,
        type: e.type,
        at: new Date(e.at).toISOString(),
        user: e.userId ? { id: e.userId, email: e.userEmail } : null,
        actor: e.actorUserId ? { id: e.actorUserId, email: e.actorEmail } : null,
        ip: e.ip,
        userAgent: e.userAgent,
        detail: e.detail,
      })),
      nextCursor: result.nextCursor,
    });
  });

  app.get(routes.apiAccounts, async (request, reply) => {
    const me = requireSignedIn(request, reply);
    if (!me) return reply;
    return reply.send({ accounts: await accountsOf(ctx, me) });
  });

  app.post(routes.apiSessionAccount, async (request, reply) => {
    const me = requireSignedIn(request, reply);
    if (!me) return reply;
    const body = parseBody(z.object({ accountId: idSchema }).strict(), request.body);
    orThrow(await switchAccount(ctx, me, { accountId: body.accountId, info: requestInfo(request) }));
    return reply.send({ ok: true, accountId: body.accountId });
  });
}
