import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { defaultLimits } from "../../config.js";
import type { AppContext } from "../../context.js";
import { LatchkeyError } from "../../errors.js";
import {
  operatorCreateAccount,
  operatorInvite,
  operatorListAccounts,
  operatorRemoveMember,
  operatorShowAccount,
} from "../../team/operator.js";
import { operatorOf } from "../access.js";
import { apiRoute, isoTime, roleSchema } from "../api-operations.js";
import { idSchema } from "../input.js";
import { failureError } from "../reply.js";
import { requestInfo } from "../request-info.js";

const iso = (ms: number): string => new Date(ms).toISOString();
const policySchema = z.enum(["email_link", "auth_app_required"]);

const accountSummarySchema = z.object({
  id: z.string(),
  name: z.string(),
  twoFactorPolicy: policySchema,
  createdAt: isoTime,
  members: z.number().int().describe("How many members the account has"),
});

const accountOverviewSchema = z.object({
  account: z.object({ id: z.string(), name: z.string(), twoFactorPolicy: policySchema, createdAt: isoTime }),
  members: z.array(
    z.object({
      id: z.string(),
      name: z.string(),
      email: z.string(),
      role: roleSchema,
      twoFactor: z.object({ method: z.enum(["email_link", "auth_app", "sso"]) }),
      lastSignInAt: isoTime.nullable(),
      joinedAt: isoTime,
    }),
  ),
  invitations: z.array(z.object({ id: z.string(), email: z.string(), role: roleSchema, expiresAt: isoTime, expired: z.boolean() })),
});

const listQuery = z
  .object({
    cursor: z.string().max(200).optional().describe("`nextCursor` of the previous page"),
    limit: z
      .string()
      .regex(/^\d{1,3}$/, "must be a whole number")
      .optional()
      .describe(`Accounts per page, 1–${defaultLimits.operatorAccountsMaxPageSize} (default ${defaultLimits.operatorAccountsPageSize})`),
  })
  .strict();

/** A path id that is not an id names nothing: 404 before any query. */
function accountIdOf(params: unknown): string {
  const id = (params as { id: string }).id;
  if (!idSchema.safeParse(id).success) throw new LatchkeyError("account_not_found", "There is no account with that id.");
  return id;
}

function memberIdOf(params: unknown): string {
  const id = (params as { userId: string }).userId;
  if (!idSchema.safeParse(id).success) throw new LatchkeyError("member_not_found", "There is no such member in this account.");
  return id;
}

/**
 * The operator API: team accounts administered by the operator's programs with an API token (`Authorization: Bearer`),
 * never a cookie. What an operator may do, and why only that, is in team/operator.ts.
 */
export function operatorRoutes(app: FastifyInstance, ctx: AppContext): void {
  apiRoute(
    app,
    {
      method: "POST",
      route: "apiAdminAccounts",
      operationId: "createAccount",
      tag: "Operator",
      summary: "Create a team account and invite its first Account Admin; the invitation is emailed and returned.",
      description:
        "The same as `latchkey account create`. The invitation link works once, for 7 days; recorded in the account's audit log with the token as actor.",
      access: "operator",
      body: z.object({ name: z.string().max(4096), adminEmail: z.string().max(4096) }).strict(),
      ok: {
        status: 201,
        description: "Created and invited.",
        schema: z.object({
          account: z.object({ id: z.string(), name: z.string() }),
          invitation: z.object({
            url: z.string().describe("The invitation link for the first admin (also emailed)"),
            expiresAt: isoTime,
            emailed: z
              .boolean()
              .describe(
                "Always true: the email is queued with the invitation and delivered by Latchkey's mail queue, retried while the mail server fails",
              ),
          }),
        }),
      },
      errors: ["account_name_invalid", "email_invalid"],
    },
    async (request, reply, { body }) => {
      const result = await operatorCreateAccount(ctx, operatorOf(request), { ...body, info: requestInfo(request) });
      if (!result.ok) throw failureError(result);
      const { account, invitation } = result.value;
      return reply.code(201).send({ account, invitation: { ...invitation, expiresAt: iso(invitation.expiresAt) } });
    },
  );

  apiRoute(
    app,
    {
      method: "GET",
      route: "apiAdminAccounts",
      operationId: "listAllAccounts",
      tag: "Operator",
      summary: "Every team account, oldest first, a page at a time.",
      access: "operator",
      query: listQuery,
      ok: {
        status: 200,
        description: "A page of accounts; pass `nextCursor` as `cursor` for the next one (null at the end).",
        schema: z.object({ accounts: z.array(accountSummarySchema), nextCursor: z.string().nullable() }),
      },
      errors: [],
    },
    async (_request, reply, { query }) => {
      const result = await operatorListAccounts(ctx, {
        cursor: query.cursor,
        limit: query.limit === undefined ? undefined : Number(query.limit),
      });
      if (!result.ok) throw failureError(result);
      return reply.send({
        accounts: result.value.accounts.map((a) => ({ ...a, createdAt: iso(a.createdAt) })),
        nextCursor: result.value.nextCursor,
      });
    },
  );

  apiRoute(
    app,
    {
      method: "GET",
      route: "apiAdminAccount",
      operationId: "getAccount",
      tag: "Operator",
      summary: "One account: its members with their roles and two-factor methods, and its open invitations.",
      access: "operator",
      ok: { status: 200, description: "The account.", schema: accountOverviewSchema },
      errors: ["account_not_found"],
    },
    async (request, reply) => {
      const result = await operatorShowAccount(ctx, accountIdOf(request.params));
      if (!result.ok) throw failureError(result);
      const { account, members, invitations } = result.value;
      return reply.send({
        account: { ...account, createdAt: iso(account.createdAt) },
        members: members.map((m) => ({
          id: m.userId,
          name: m.name,
          email: m.email,
          role: m.role,
          twoFactor: { method: m.method },
          lastSignInAt: m.lastSignInAt === null ? null : iso(m.lastSignInAt),
          joinedAt: iso(m.joinedAt),
        })),
        invitations: invitations.map((i) => ({ id: i.id, email: i.email, role: i.role, expiresAt: iso(i.expiresAt), expired: i.expired })),
      });
    },
  );

  apiRoute(
    app,
    {
      method: "POST",
      route: "apiAdminAccountInvitations",
      operationId: "inviteToAccount",
      tag: "Operator",
      summary: "Invite an email to an account with a role; the invitation is emailed and returned.",
      description: "An older open invitation of the same email to the account stops working.",
      access: "operator",
      body: z.object({ email: z.string().max(4096), role: roleSchema }).strict(),
      ok: {
        status: 201,
        description: "Invited.",
        schema: z.object({
          invitation: z.object({
            id: z.string(),
            email: z.string(),
            role: roleSchema,
            url: z.string().describe("The invitation link (also emailed)"),
            expiresAt: isoTime,
            emailed: z
              .boolean()
              .describe(
                "Always true: the email is queued with the invitation and delivered by Latchkey's mail queue, retried while the mail server fails",
              ),
          }),
        }),
      },
      errors: ["account_not_found", "email_invalid", "already_member"],
    },
    async (request, reply, { body }) => {
      const result = await operatorInvite(ctx, operatorOf(request), {
        accountId: accountIdOf(request.params),
        email: body.email,
        role: body.role,
        info: requestInfo(request),
      });
      if (!result.ok) throw failureError(result);
      const { invitationId, email, role, url, expiresAt, emailed } = result.value;
      return reply.code(201).send({ invitation: { id: invitationId, email, role, url, expiresAt: iso(expiresAt), emailed } });
    },
  );

  apiRoute(
    app,
    {
      method: "DELETE",
      route: "apiAdminAccountMember",
      operationId: "removeAccountMember",
      tag: "Operator",
      summary: "Remove a member from an account, as an Account Admin would: signed out of it at once.",
      description:
        "The login is deleted when it was the person's only account. The account's last admin cannot be removed (409 `last_admin`): make someone else admin first.",
      access: "operator",
      ok: {
        status: 200,
        description: "Removed; `loginDeleted` says whether the login went too.",
        schema: z.object({ ok: z.literal(true), loginDeleted: z.boolean() }),
      },
      errors: ["account_not_found", "member_not_found", "last_admin"],
    },
    async (request, reply) => {
      const result = await operatorRemoveMember(ctx, operatorOf(request), {
        accountId: accountIdOf(request.params),
        userId: memberIdOf(request.params),
        info: requestInfo(request),
      });
      if (!result.ok) throw failureError(result);
      return reply.send({ ok: true, loginDeleted: result.value.loginDeleted });
    },
  );
}
