import type { AppContext, RequestInfo } from "../context.js";
import { randomBytes } from "node:crypto";

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
  | "password.changed"
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
  | "sign_in.sso_failed";

export interface AuditInput {
  type: AuditEventType;
  accountId?: string | null;
  userId?: string | null;
  actorUserId?: string | null;
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

export async function recordEvent(ctx: Db, input: AuditInput): Promise<void> {
  await ctx.db
    .insertInto("audit_events")
    .values({
      id: auditId(ctx.clock.now()),
      account_id: input.accountId ?? null,
      user_id: input.userId ?? null,
      actor_user_id: input.actorUserId ?? input.userId ?? null,
      type: input.type,
      ip: input.info?.ip ?? null,
      user_agent: input.info?.userAgent?.slice(0, 512) ?? null,
      detail: JSON.stringify(input.detail ?? {}),
      created_at: ctx.clock.now(),
    })
    .execute();
}
