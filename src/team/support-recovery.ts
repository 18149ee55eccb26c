import { userInfo } from "node:os";
import type { AppContext, RequestInfo } from "../context.js";
import type { Selectable } from "kysely";
import type { SupportRequestTable, SupportStatus } from "../db/schema.js";
import { fail, ok, type Result } from "../errors.js";
import { recordEventForEveryAccount, type AuditEventType } from "../audit/events.js";
import { removeAuthApp } from "../auth/auth-app.js";
import { resetCodeLimits } from "../auth/code-limits.js";
import { checkEmail } from "../auth/emails.js";
import { hashToken, looksLikeToken, newId, newToken } from "../auth/tokens.js";
import { supportApprovedMessage, supportCompletedMessage, supportConfirmMessage, supportDeniedMessage } from "../mail/messages.js";
import { urlTo } from "../paths.js";

/**
 * Support recovery, the seed's third way back in: the person asks from their registered address (proved by a link
 * to that inbox), an operator verifies them out of band and approves with `latchkey support approve`, and the reset
 * happens only after a waiting period, announced to the same inbox with a link to cancel. An attacker needs the
 * inbox, the operator's approval, and the owner's silence for the whole wait.
 */

const MESSAGE_MAX_LENGTH = 2000;

/** Every member account's audit log records what happens to a support request (each admin sees it). */
async function auditEverywhere(
  ctx: AppContext,
  userId: string,
  type: AuditEventType,
  info: RequestInfo | undefined,
  detail: Record<string, unknown>,
): Promise<void> {
  await recordEventForEveryAccount(ctx, { type, userId, ...(info ? { info } : {}), detail });
}

async function sendQuietly(ctx: AppContext, message: Parameters<AppContext["mailer"]["send"]>[0]): Promise<void> {
  try {
    await ctx.mailer.send(message);
  } catch {
    // The request's state is already stored; the operator sees it in `latchkey support show`.
  }
}

/**
 * A person asks for a reset. The answer never says whether the email has a login (no enumeration), not even by its
 * timing: this checks only what every request gets alike (the input, the throttles) and hands back the rest as
 * `afterAnswer` — the look-up and, for a registered address, the row, the audit events and the confirmation
 * email — for the caller to run once the answer has gone out. Limited per address per day and per IP per hour.
 */
export async function requestSupportReset(
  ctx: AppContext,
  input: { email: string; message: string; info: RequestInfo },
): Promise<Result<{ afterAnswer: () => Promise<void> }, "email_invalid" | "invalid_request" | "too_many_attempts">> {
  const email = checkEmail(input.email, ctx.config.limits);
  if (!email.ok) return email;
  const message = input.message.normalize("NFC").trim();
  if ([...message].length > MESSAGE_MAX_LENGTH) return fail("invalid_request", `Keep the message under ${MESSAGE_MAX_LENGTH} characters.`);
  // Checked here, for every address alike: PostgreSQL refuses NUL bytes in text, which would make the stored
  // request of a registered address fail where an unknown one does nothing.
  if (/(?![\t\n\r])\p{Cc}/u.test(message)) return fail("invalid_request", "The message cannot contain control characters.");
  const count = await ctx.attempts.hit(`support:email:${email.value}`, 24 * 60 * 60);
  // Per address, and per IP so nobody can make Latchkey mail many inboxes.
  const fromIp = input.info.ip ? await ctx.attempts.hit(`support:ip:${input.info.ip}`, 60 * 60) : 0;
  if (fromIp > ctx.config.limits.supportRequestsPerIpPerHour) {
    return fail("too_many_attempts", "Too many requests from your network. Try again in an hour.");
  }
  if (count > ctx.config.limits.supportRequestsPerEmailPerDay) {
    return fail(
      "too_many_attempts",
      "Too many requests for this address today. Check your inbox for the earlier emails, or try again tomorrow.",
    );
  }
  return ok({ afterAnswer: () => recordSupportRequest(ctx, { email: email.value, message, info: input.info }) });
}

/** The part of a request that differs between a registered and an unknown address: run after the answer. */
async function recordSupportRequest(ctx: AppContext, input: { email: string; message: string; info: RequestInfo }): Promise<void> {
  const user = await ctx.db.selectFrom("users").select(["id", "password_hash"]).where("email", "=", input.email).executeTakeFirst();
  if (!user || user.password_hash === null) return;
  const now = ctx.clock.now();
  const token = newToken();
  const id = newId();
  await ctx.db
    .insertInto("support_requests")
    .values({
      id,
      user_id: user.id,
      email: input.email,
      message: input.message,
      status: "unconfirmed",
      confirm_token_hash: hashToken(token),
      cancel_token_hash: null,
      created_at: now,
      confirm_expires_at: now + ctx.config.limits.supportConfirmTtlSeconds * 1000,
      confirmed_at: null,
      decided_at: null,
      decided_by: null,
      decision_note: null,
      resets_at: null,
      completed_at: null,
      ip: input.info.ip,
      user_agent: input.info.userAgent,
    })
    .execute();
  await auditEverywhere(ctx, user.id, "support.requested", input.info, { requestId: id });
  await sendQuietly(
    ctx,
    supportConfirmMessage({
      to: input.email,
      productName: ctx.config.productName,
      url: urlTo(ctx.config.publicUrl, "supportConfirm", { token }),
      expiresInHours: Math.round(ctx.config.limits.supportConfirmTtlSeconds / 3600),
    }),
  );
}

type ConfirmationFailure = "link_invalid" | "link_expired";

/** The request a confirmation link names, if the link can still be used (an already confirmed one stays valid: confirming twice is harmless). */
async function findConfirmation(
  ctx: AppContext,
  token: string,
): Promise<Result<{ id: string; user_id: string; status: SupportStatus }, ConfirmationFailure>> {
  if (!looksLikeToken(token)) return fail("link_invalid", "This confirmation link is not valid.");
  const row = await ctx.db
    .selectFrom("support_requests")
    .select(["id", "user_id", "status", "confirm_expires_at"])
    .where("confirm_token_hash", "=", hashToken(token))
    .executeTakeFirst();
  if (!row) return fail("link_invalid", "This confirmation link is not valid.");
  if (row.status === "unconfirmed" && row.confirm_expires_at <= ctx.clock.now())
    return fail("link_expired", "This confirmation link has expired. Send a new request.");
  return ok(row);
}

/** Checks a confirmation link before its page is drawn: a page is never shown for a token that names nothing. */
export async function checkSupportConfirmation(ctx: AppContext, token: string): Promise<Result<null, ConfirmationFailure>> {
  const found = await findConfirmation(ctx, token);
  return found.ok ? ok(null) : found;
}

/** The owner confirms from their inbox; the request joins the operators' queue. Single use (guarded UPDATE). */
export async function confirmSupportRequest(
  ctx: AppContext,
  token: string,
  info: RequestInfo,
): Promise<Result<{ requestId: string }, ConfirmationFailure>> {
  const found = await findConfirmation(ctx, token);
  if (!found.ok) return found;
  const row = found.value;
  const now = ctx.clock.now();
  if (row.status !== "unconfirmed") return ok({ requestId: row.id });
  const claimed = await ctx.db
    .updateTable("support_requests")
    .set({ status: "pending", confirmed_at: now })
    .where("id", "=", row.id)
    .where("status", "=", "unconfirmed")
    .executeTakeFirst();
  if (Number(claimed.numUpdatedRows) === 1) await auditEverywhere(ctx, row.user_id, "support.confirmed", info, { requestId: row.id });
  return ok({ requestId: row.id });
}

export interface SupportRequestView {
  id: string;
  email: string;
  userId: string;
  status: SupportStatus;
  message: string;
  createdAt: number;
  confirmedAt: number | null;
  decidedAt: number | null;
  decidedBy: string | null;
  decisionNote: string | null;
  resetsAt: number | null;
  completedAt: number | null;
  ip: string | null;
  userAgent: string | null;
}

function view(r: Selectable<SupportRequestTable>): SupportRequestView {
  return {
    id: r.id,
    email: r.email,
    userId: r.user_id,
    status: r.status,
    message: r.message,
    createdAt: r.created_at,
    confirmedAt: r.confirmed_at,
    decidedAt: r.decided_at,
    decidedBy: r.decided_by,
    decisionNote: r.decision_note,
    resetsAt: r.resets_at,
    completedAt: r.completed_at,
    ip: r.ip,
    userAgent: r.user_agent,
  };
}

/** The queue: confirmed requests waiting for a decision first, then approved ones waiting out their period; `all` adds the rest. */
export async function listSupportRequests(ctx: AppContext, options: { all: boolean }): Promise<SupportRequestView[]> {
  let q = ctx.db.selectFrom("support_requests").selectAll();
  if (!options.all) q = q.where("status", "in", ["pending", "approved"]);
  const rows = await q.orderBy("created_at", "asc").execute();
  return rows.map(view);
}

export interface SupportRequestDetail extends SupportRequestView {
  user: {
    name: string;
    method: string;
    createdAt: number;
    accounts: Array<{ name: string; role: string; lastSignInAt: number | null }>;
  } | null;
}

export async function showSupportRequest(ctx: AppContext, id: string): Promise<SupportRequestDetail | null> {
  const row = await ctx.db.selectFrom("support_requests").selectAll().where("id", "=", id).executeTakeFirst();
  if (!row) return null;
  const user = await ctx.db
    .selectFrom("users")
    .select(["name", "two_factor_method", "created_at"])
    .where("id", "=", row.user_id)
    .executeTakeFirst();
  const accounts = await ctx.db
    .selectFrom("memberships")
    .innerJoin("accounts", "accounts.id", "memberships.account_id")
    .select(["accounts.name", "memberships.role", "memberships.last_sign_in_at"])
    .where("memberships.user_id", "=", row.user_id)
    .execute();
  return {
    ...view(row),
    user: user
      ? {
          name: user.name,
          method: user.two_factor_method,
          createdAt: user.created_at,
          accounts: accounts.map((a) => ({ name: a.name, role: a.role, lastSignInAt: a.last_sign_in_at })),
        }
      : null,
  };
}

export type DecideFailure = "not_found" | "invalid_request";

function operatorName(given: string | undefined): string {
  if (given && given.trim()) return given.trim().slice(0, 100);
  try {
    return userInfo().username;
  } catch {
    return "operator";
  }
}

/** An operator approves a confirmed request: the reset is scheduled after the waiting period and the owner is told, with a cancel link. */
export async function approveSupportRequest(
  ctx: AppContext,
  input: { id: string; operator?: string; note?: string },
): Promise<Result<{ resetsAt: number; email: string }, DecideFailure>> {
  const now = ctx.clock.now();
  const resetsAt = now + ctx.config.limits.supportWaitingPeriodSeconds * 1000;
  const cancelToken = newToken();
  const row = await ctx.db
    .selectFrom("support_requests")
    .select(["id", "status", "email", "user_id"])
    .where("id", "=", input.id)
    .executeTakeFirst();
  if (!row) return fail("not_found", `No support request ${input.id}.`);
  const claimed = await ctx.db
    .updateTable("support_requests")
    .set({
      status: "approved",
      decided_at: now,
      decided_by: operatorName(input.operator),
      decision_note: input.note ?? null,
      resets_at: resetsAt,
      cancel_token_hash: hashToken(cancelToken),
    })
    .where("id", "=", input.id)
    .where("status", "=", "pending")
    .executeTakeFirst();
  if (Number(claimed.numUpdatedRows) !== 1) {
    return fail(
      "invalid_request",
      row.status === "unconfirmed"
        ? "The person has not confirmed this request from their inbox yet: it cannot be approved."
        : `This request is ${row.status}; only a pending request can be approved.`,
    );
  }
  await auditEverywhere(ctx, row.user_id, "support.approved", undefined, {
    requestId: row.id,
    resetsAt,
    operator: operatorName(input.operator),
  });
  await sendQuietly(
    ctx,
    supportApprovedMessage({
      to: row.email,
      productName: ctx.config.productName,
      resetsAt: new Date(resetsAt),
      cancelUrl: urlTo(ctx.config.publicUrl, "supportCancel", { token: cancelToken }),
    }),
  );
  return ok({ resetsAt, email: row.email });
}

export async function denySupportRequest(
  ctx: AppContext,
  input: { id: string; operator?: string; note?: string },
): Promise<Result<{ email: string }, DecideFailure>> {
  const row = await ctx.db
    .selectFrom("support_requests")
    .select(["id", "status", "email", "user_id"])
    .where("id", "=", input.id)
    .executeTakeFirst();
  if (!row) return fail("not_found", `No support request ${input.id}.`);
  const claimed = await ctx.db
    .updateTable("support_requests")
    .set({ status: "denied", decided_at: ctx.clock.now(), decided_by: operatorName(input.operator), decision_note: input.note ?? null })
    .where("id", "=", input.id)
    .where("status", "in", ["unconfirmed", "pending", "approved"])
    .executeTakeFirst();
  if (Number(claimed.numUpdatedRows) !== 1) return fail("invalid_request", `This request is ${row.status} and can no longer be denied.`);
  await auditEverywhere(ctx, row.user_id, "support.denied", undefined, { requestId: row.id, operator: operatorName(input.operator) });
  await sendQuietly(ctx, supportDeniedMessage({ to: row.email, productName: ctx.config.productName }));
  return ok({ email: row.email });
}

/** The owner cancels an approved reset from the link in their inbox. */
export async function cancelSupportReset(
  ctx: AppContext,
  token: string,
  info: RequestInfo,
): Promise<Result<null, "link_invalid" | "link_used">> {
  if (!looksLikeToken(token)) return fail("link_invalid", "This cancel link is not valid.");
  const row = await ctx.db
    .selectFrom("support_requests")
    .select(["id", "user_id", "status"])
    .where("cancel_token_hash", "=", hashToken(token))
    .executeTakeFirst();
  if (!row) return fail("link_invalid", "This cancel link is not valid.");
  const claimed = await ctx.db
    .updateTable("support_requests")
    .set({ status: "cancelled" })
    .where("id", "=", row.id)
    .where("status", "=", "approved")
    .executeTakeFirst();
  if (Number(claimed.numUpdatedRows) !== 1)
    return fail(
      "link_used",
      row.status === "completed"
        ? "This reset already happened. Sign in and set up your authenticator app again, and change your password if it was not you."
        : "This reset is no longer scheduled.",
    );
  await auditEverywhere(ctx, row.user_id, "support.cancelled", info, { requestId: row.id });
  return ok(null);
}

/** Checks a cancel link before its page is drawn: it must name a reset that is still scheduled. */
export async function checkSupportCancellation(ctx: AppContext, token: string): Promise<Result<null, "link_invalid" | "link_used">> {
  if (!looksLikeToken(token)) return fail("link_invalid", "This cancel link is not valid.");
  const row = await ctx.db
    .selectFrom("support_requests")
    .select("status")
    .where("cancel_token_hash", "=", hashToken(token))
    .executeTakeFirst();
  if (!row) return fail("link_invalid", "This cancel link is not valid.");
  if (row.status !== "approved") return fail("link_used", "This reset is not scheduled any more (it was cancelled, or already happened).");
  return ok(null);
}

/**
 * Applies every approved reset whose waiting period is over: two-factor back to the email link, TOTP key and
 * recovery codes gone, every session ended. Each request is claimed by a guarded UPDATE, so several instances
 * sweeping at once apply it exactly once. Returns how many were applied.
 */
export async function applyDueSupportResets(ctx: AppContext): Promise<number> {
  const now = ctx.clock.now();
  const due = await ctx.db
    .selectFrom("support_requests")
    .select(["id", "user_id", "email"])
    .where("status", "=", "approved")
    .where("resets_at", "<=", now)
    .execute();
  let applied = 0;
  for (const request of due) {
    const done = await ctx.db.transaction().execute(async (tx) => {
      const claimed = await tx
        .updateTable("support_requests")
        .set({ status: "completed", completed_at: now })
        .where("id", "=", request.id)
        .where("status", "=", "approved")
        .executeTakeFirst();
      if (Number(claimed.numUpdatedRows) !== 1) return false;
      await removeAuthApp(tx, request.user_id, now);
      await tx.deleteFrom("sessions").where("user_id", "=", request.user_id).execute();
      return true;
    });
    if (!done) continue;
    applied += 1;
    // The lock of code entry, if any, goes too, with its doubling: the person starts again from the password.
    await resetCodeLimits(ctx, request.user_id);
    await auditEverywhere(ctx, request.user_id, "support.reset_completed", undefined, { requestId: request.id });
    await sendQuietly(
      ctx,
      supportCompletedMessage({ to: request.email, productName: ctx.config.productName, signInUrl: urlTo(ctx.config.publicUrl, "login") }),
    );
  }
  return applied;
}
