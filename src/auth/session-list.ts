import type { AppContext, RequestInfo } from "../context.js";
import type { SignInProof } from "../db/schema.js";
import { fail, ok, type Result } from "../errors.js";
import { recordEvent } from "../audit/events.js";
import { describeDevice } from "../mail/device.js";
import { hasFreshProof } from "./fresh-proof.js";
import { revokeUserSessions, type SignedIn } from "./sessions.js";

/**
 * "Where you're signed in": a person's own sessions, and ending them. Sessions are named by their row id, never by
 * the token or its hash: the id is not a credential (the session check looks up the hash of the cookie's token, and
 * an id hashes to nothing stored), so showing it gives nothing away. Every query is bound to the signed-in user, so
 * another person's session id is "not found", exactly like an id that never existed.
 */

export interface SessionSummary {
  id: string;
  /** The session making this request. */
  current: boolean;
  /** "Chrome 120 on macOS": described from bowser's fixed vocabulary, never the User-Agent itself. */
  device: string;
  ip: string | null;
  /** What finished the sign-in. */
  method: SignInProof;
  accountId: string;
  accountName: string;
  createdAt: number;
  lastSeenAt: number;
}

/** The person's live sessions (every account), this one first, then the most recently active. */
export async function listOwnSessions(ctx: Pick<AppContext, "db" | "clock" | "config">, me: SignedIn): Promise<SessionSummary[]> {
  const now = ctx.clock.now();
  const idleMs = ctx.config.limits.sessionIdleTimeoutSeconds * 1000;
  const rows = await ctx.db
    .selectFrom("sessions")
    .innerJoin("accounts", "accounts.id", "sessions.account_id")
    .innerJoin("memberships", (join) =>
      join.onRef("memberships.user_id", "=", "sessions.user_id").onRef("memberships.account_id", "=", "sessions.account_id"),
    )
    .select([
      "sessions.id",
      "sessions.ip",
      "sessions.user_agent",
      "sessions.sign_in_proof",
      "sessions.created_at",
      "sessions.last_seen_at",
      "accounts.id as accountId",
      "accounts.name as accountName",
      "memberships.sign_in_method",
    ])
    .where("sessions.user_id", "=", me.user.id)
    // Ended ones (idle, past their absolute end) are gone for the session check too; their rows wait for clean-up.
    .where("sessions.expires_at", ">", now)
    .where("sessions.last_seen_at", ">", now - idleMs)
    .orderBy("sessions.last_seen_at", "desc")
    .orderBy("sessions.id")
    .execute();
  const sessions = rows.map((r) => ({
    id: r.id,
    current: r.id === me.sessionId,
    device: describeDevice(r.user_agent),
    ip: r.ip,
    // Sessions from before the proof was recorded read as the weakest proof of their method, as the session check does.
    method: r.sign_in_proof ?? (r.sign_in_method === "sso" ? "sso" : "email_link"),
    accountId: r.accountId,
    accountName: r.accountName,
    createdAt: r.created_at,
    // This request is activity of the current session, whatever the once-a-minute write has stored so far.
    lastSeenAt: r.id === me.sessionId ? now : r.last_seen_at,
  }));
  return [...sessions.filter((s) => s.current), ...sessions.filter((s) => !s.current)];
}

/**
 * Ends one of the person's sessions (this one included: that is signing out). Another user's session, or an id that
 * names nothing, is `session_not_found` alike. Like signing out, it deletes the row: the session check refuses its
 * cookie on the next request on every instance, and the OpenID Provider's logout sweep ends the applications'
 * sessions made from it (the caller asks for a sweep).
 */
export async function endOwnSession(
  ctx: Pick<AppContext, "db" | "clock">,
  me: SignedIn,
  input: { sessionId: string; info: RequestInfo },
): Promise<Result<{ current: boolean }, "session_not_found">> {
  const notFound = fail("session_not_found", "You have no session with that id. It may have ended already.");
  const row = await ctx.db
    .selectFrom("sessions")
    .select(["id", "account_id", "user_agent", "ip"])
    .where("id", "=", input.sessionId)
    .where("user_id", "=", me.user.id)
    .executeTakeFirst();
  if (!row) return notFound;
  const deleted = await ctx.db.deleteFrom("sessions").where("id", "=", row.id).where("user_id", "=", me.user.id).executeTakeFirst();
  // Ended meanwhile by another request: nothing of it is left to end.
  if (Number(deleted.numDeletedRows) !== 1) return notFound;
  const current = row.id === me.sessionId;
  await recordEvent(ctx, {
    type: current ? "session.signed_out" : "session.revoked",
    userId: me.user.id,
    // The account the ended session was in: its admins see it in their log.
    accountId: row.account_id,
    info: input.info,
    detail: current ? {} : { sessionId: row.id, device: describeDevice(row.user_agent), sessionIp: row.ip },
  });
  return ok({ current });
}

/**
 * "Sign out all other sessions": every session of the person but this one, and the sign-ins in progress that already
 * passed the password. Needs a fresh proof, like every change that could lock the person out of their other browsers.
 */
export async function endOtherSessions(
  ctx: Pick<AppContext, "db" | "clock" | "config">,
  me: SignedIn,
  info: RequestInfo,
): Promise<Result<{ ended: number }, "fresh_proof_required">> {
  if (!hasFreshProof(ctx, me)) {
    const minutes = Math.round(ctx.config.limits.freshProofSeconds / 60);
    return fail(
      "fresh_proof_required",
      me.signInMethod === "password"
        ? `Confirm your password first: signing out everywhere else needs a proof from the last ${minutes} minutes.`
        : `Sign out and sign in again with single sign-on first: signing out everywhere else needs a sign-in from the last ${minutes} minutes.`,
    );
  }
  const ended = await revokeUserSessions(ctx, me.user.id, me.sessionId);
  await ctx.db
    .updateTable("challenges")
    .set({ consumed_at: ctx.clock.now() })
    .where("user_id", "=", me.user.id)
    .where("consumed_at", "is", null)
    .execute();
  await recordEvent(ctx, { type: "session.others_revoked", userId: me.user.id, accountId: me.account.id, info, detail: { ended } });
  return ok({ ended });
}
