import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import type { SignedIn } from "../../auth/sessions.js";
import { LatchkeyError } from "../../errors.js";
import { decodeCursor, listAuditEvents } from "../../audit/log.js";
import { listTeamMembers } from "../../team/members.js";
import { routes, pathTo } from "../../paths.js";
import { adminsOnly, signedInOf } from "../access.js";
import { apiRoute, isoTime } from "../api-operations.js";
import { settingsChrome } from "../chrome.js";
import { idSchema, parseBody } from "../input.js";
import { auditPage } from "../views/audit.js";

const AUDIT_PAGE_SIZE = 50;
const AUDIT_MAX_PAGE_SIZE = 200;
const MS_PER_DAY = 86_400_000;

const auditQuery = z
  .object({
    member: z
      .union([z.literal(""), idSchema])
      .optional()
      .describe("Only events of this member (user id)"),
    event: z
      .string()
      .max(64)
      .regex(/^[a-z_.]*$/, "may contain only a-z, _ and .")
      .optional()
      .describe("An event type, or a prefix ending in '.' (e.g. sign_in.)"),
    from: z.string().max(40).optional().describe("From this date (2026-01-31) or ISO date-time"),
    to: z.string().max(40).optional().describe("Up to this date (inclusive) or ISO date-time"),
    cursor: z.string().max(200).optional().describe("`nextCursor` of the previous page"),
    limit: z
      .string()
      .regex(/^\d{1,3}$/, "must be a whole number")
      .optional()
      .describe(`Events per page, 1–${AUDIT_MAX_PAGE_SIZE} (default ${AUDIT_PAGE_SIZE})`),
  })
  .strict();

/** "YYYY-MM-DD" or an ISO date-time → epoch ms; undefined when empty; throws a 400 when malformed. */
function parseDate(name: string, value: string | undefined, endOfDay = false): number | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  const v = value.trim();
  const ms = /^\d{4}-\d{2}-\d{2}$/.test(v) ? Date.parse(`${v}T00:00:00Z`) + (endOfDay ? MS_PER_DAY : 0) : Date.parse(v);
  if (Number.isNaN(ms)) throw new LatchkeyError("invalid_request", `"${name}" must be a date like 2026-01-31 or an ISO date-time.`);
  return ms;
}

/** The audit log of the current account (admins): the page with filters and the JSON API with cursor pagination. */
export function auditRoutes(app: FastifyInstance, ctx: AppContext): void {
  async function auditFor(
    me: SignedIn,
    raw: unknown,
  ): Promise<{ result: Awaited<ReturnType<typeof listAuditEvents>>; q: z.infer<typeof auditQuery> }> {
    const q = parseBody(auditQuery, raw);
    if (q.cursor && !decodeCursor(q.cursor))
      throw new LatchkeyError("invalid_request", '"cursor" is not valid: pass the nextCursor of the previous page as it is.');
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
    return { result, q };
  }

  app.get(routes.audit, adminsOnly, async (request, reply) => {
    const me = signedInOf(request);
    // The events and the member filter's list side by side: on PostgreSQL two connections of the pool, so the page
    // waits for the slower of the two reads, not for both in turn (issue 10).
    const [{ result, q }, members] = await Promise.all([auditFor(me, request.query), listTeamMembers(ctx, me.account.id)]);
    const filters = { member: q.member ?? "", event: q.event ?? "", from: q.from ?? "", to: q.to ?? "" };
    const nextHref = result.nextCursor ? pathTo("audit", {}, { ...filters, cursor: result.nextCursor }) : null;
    return reply.html(
      auditPage({
        ...settingsChrome(ctx, request, reply, me),
        entries: result.entries,
        nextHref,
        filters,
        members,
      }),
    );
  });

  apiRoute(
    app,
    {
      method: "GET",
      route: "apiAudit",
      operationId: "listAuditEvents",
      tag: "Team",
      summary: "The account's security events, newest first (admins), a page at a time.",
      access: "admin",
      query: auditQuery,
      ok: {
        status: 200,
        description: "A page of events; pass `nextCursor` as `cursor` for the next one (null at the end).",
        schema: z.object({
          events: z.array(
            z.object({
              id: z.string(),
              type: z.string(),
              at: isoTime,
              user: z.object({ id: z.string(), email: z.string().nullable() }).nullable(),
              actor: z.object({ id: z.string(), email: z.string().nullable() }).nullable(),
              ip: z.string().nullable(),
              userAgent: z.string().nullable(),
              detail: z.record(z.string(), z.unknown()).nullable(),
            }),
          ),
          nextCursor: z.string().nullable(),
        }),
      },
      errors: [],
    },
    async (request, reply) => {
      const { result } = await auditFor(signedInOf(request), request.query);
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
    },
  );
}
