import type { AppContext, RequestInfo } from "../context.js";
import { randomBytes } from "node:crypto";
import type { Insertable } from "kysely";
import type { Database } from "../db/schema.js";
import { compiledOnce } from "../db/compiled-once.js";

/** Every security event Latchkey records. Stable names: the audit API filters on them. */
export type AuditEventType =
  | "account.created"
  | "invitation.created"
  | "invitation.accepted"
  | "invitation.resent"
  | "invitation.revoked"
  | "member.removed"
  | "member.role_changed"
  | "policy.changed"
  | "session.account_switched"
  | "support.requested"
  | "support.confirmed"
  | "support.approved"
  | "support.denied"
  | "support.cancelled"
  | "support.reset_completed"
  | "sign_in.password_failed"
  | "sign_in.throttled"
  | "sign_in.password_accepted"
  | "sign_in.email_link_sent"
  | "sign_in.email_link_wrong_browser"
  | "sign_in.succeeded"
  | "session.signed_out"
  | "session.revoked"
  | "session.others_revoked"
  | "email.change_requested"
  | "email.change_cancelled"
  | "email.changed"
  | "password.changed"
  | "password.reset_requested"
  | "password.reset_code_failed"
  | "password.reset"
  | "sign_in.code_failed"
  | "sign_in.code_entry_locked"
  | "sign_in.recovery_code_used"
  | "two_factor.auth_app_enabled"
  | "two_factor.auth_app_disabled"
  | "two_factor.recovery_codes_regenerated"
  | "session.reauthenticated"
  | "session.reauthentication_failed"
  | "sso.connected"
  | "sso.disconnected"
  | "sso.member_provisioned"
  | "sign_in.sso_failed"
  | "api_token.created"
  | "api_token.revoked";

/** An operator API token that made a change through the operator API (`/api/v1/admin/*`). */
export interface TokenActor {
  tokenId: string;
  tokenName: string;
}

export interface AuditInput {
  type: AuditEventType;
  accountId?: string | null;
  userId?: string | null;
  actorUserId?: string | null;
  /** The change was made with an operator API token, not by a person: the event names the token as `actor` in its detail. */
  actorToken?: TokenActor | undefined;
  info?: RequestInfo;
  detail?: Record<string, unknown>;
}

type Db = Pick<AppContext, "db" | "clock">;

let sequence = 0;

/**
 * Audit ids sort in the order events were recorded: 12 hex digits of milliseconds, 4 of a per-process sequence
 * (events of one request often share a millisecond), 16 random. The log orders by (time, id), so ties keep their order.
 */
function auditId(nowMs: number): string {
  sequence = (sequence + 1) % 0x10000;
  return (
    Math.max(0, Math.floor(nowMs)).toString(16).padStart(12, "0").slice(-12) +
    sequence.toString(16).padStart(4, "0") +
    randomBytes(8).toString("hex")
  );
}

type AuditRow = Insertable<Database["audit_events"]>;

/** Every audit event is this one insert (several in most requests): built and compiled once per dialect. */
const insertEvent = compiledOnce<AuditRow, never>((db, p) =>
  db.insertInto("audit_events").values({
    id: p("id"),
    account_id: p("account_id"),
    user_id: p("user_id"),
    actor_user_id: p("actor_user_id"),
    type: p("type"),
    ip: p("ip"),
    user_agent: p("user_agent"),
    detail: p("detail"),
    created_at: p("created_at"),
  }),
);

export async function recordEvent(ctx: Db, input: AuditInput): Promise<void> {
  const row: AuditRow = {
    id: auditId(ctx.clock.now()),
    account_id: input.accountId ?? null,
    user_id: input.userId ?? null,
    // A token acted, not a person: no actor user (in particular not the person the event is about).
    actor_user_id: input.actorToken ? null : (input.actorUserId ?? input.userId ?? null),
    type: input.type,
    ip: input.info?.ip ?? null,
    user_agent: input.info?.userAgent?.slice(0, 512) ?? null,
    detail: JSON.stringify(input.actorToken ? { ...input.detail, actor: input.actorToken } : (input.detail ?? {})),
    created_at: ctx.clock.now(),
  };
  await ctx.db.executeQuery(insertEvent(ctx.db, row));
}

/**
 * Records an event about a person in the log of each account they are a member of (each admin sees it), or once
 * without an account when they belong to none. For events about the login itself, which every account shares.
 */
export async function recordEventForEveryAccount(ctx: Db, input: Omit<AuditInput, "accountId"> & { userId: string }): Promise<void> {
  const rows = await ctx.db.selectFrom("memberships").select("account_id").where("user_id", "=", input.userId).execute();
  const accounts = rows.length ? rows.map((r) => r.account_id) : [null];
  for (const accountId of accounts) await recordEvent(ctx, { ...input, accountId });
}
