import type { Kysely } from "kysely";
import type { AppContext, RequestInfo } from "../context.js";
import type { Database, Role, TwoFactorMethod, TwoFactorPolicy, SignInMethod, SignInProof } from "../db/schema.js";
import { hashToken, looksLikeToken, newId, newToken } from "./tokens.js";
import { recordEvent } from "../audit/events.js";
import { findSession, removeSession, touchSession } from "./session-lookup.js";

export interface SignedIn {
  sessionId: string;
  /**
   * `twoFactorMethod` is "sso" in a session opened by single sign-on: the password login's method is one of its
   * factors, which such a session never sees (see `passwordLoginFactors`).
   */
  user: { id: string; email: string; name: string; twoFactorMethod: TwoFactorMethod | "sso" };
  account: { id: string; name: string; twoFactorPolicy: TwoFactorPolicy };
  role: Role;
  signInMethod: SignInMethod;
  /** When the person last proved a factor in this session. */
  freshProofAt: number;
  expiresAt: number;
  /** When the session was opened (the sign-in's time: `auth_time` for the OpenID Provider). */
  signedInAt: number;
  /**
   * What finished the sign-in (or, after the auth app was set up in this session, `auth_app`). Sessions from before
   * it was recorded read as the weakest proof of their method: `email_link`, or `sso`.
   */
  proof: SignInProof;
  /** After SSO, the `amr` values the upstream provider sent (possibly none). */
  upstreamAmr: string[];
}

function parseAmr(text: string | null): string[] {
  if (text === null) return [];
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
  } catch {
    return [];
  }
}

/**
 * Starts a session: a new random token (256 bits) every time, of which only the hash is stored. Returns the token
 * for the cookie. `db` may be a transaction, so the session appears only if the whole sign-in commits.
 */
export async function createSession(
  ctx: Pick<AppContext, "clock" | "config">,
  db: Kysely<Database>,
  input: { userId: string; accountId: string; info: RequestInfo; proof?: SignInProof; upstreamAmr?: string[] },
): Promise<{ token: string; sessionId: string; expiresAt: number }> {
  const now = ctx.clock.now();
  const token = newToken();
  const sessionId = newId();
  const expiresAt = now + ctx.config.limits.sessionAbsoluteTimeoutSeconds * 1000;
  await db
    .insertInto("sessions")
    .values({
      id: sessionId,
      token_hash: hashToken(token),
      user_id: input.userId,
      account_id: input.accountId,
      created_at: now,
      last_seen_at: now,
      expires_at: expiresAt,
      fresh_proof_at: now,
      ip: input.info.ip,
      user_agent: input.info.userAgent?.slice(0, 512) ?? null,
      sign_in_proof: input.proof ?? null,
      upstream_amr: input.upstreamAmr && input.upstreamAmr.length > 0 ? JSON.stringify(input.upstreamAmr) : null,
    })
    .execute();
  await db
    .updateTable("memberships")
    .set({ last_sign_in_at: now })
    .where("user_id", "=", input.userId)
    .where("account_id", "=", input.accountId)
    .execute();
  return { token, sessionId, expiresAt };
}

/**
 * The session behind a cookie value, or null when it is unknown, idle too long, past its absolute end, or its
 * membership is gone. Reads the database every time: a revocation on any instance takes effect on the next request.
 */
export async function validateSession(
  ctx: Pick<AppContext, "db" | "clock" | "config">,
  token: string | undefined,
): Promise<SignedIn | null> {
  if (!looksLikeToken(token)) return null;
  const now = ctx.clock.now();
  // The hot path: prepared statements of src/auth/session-lookup.ts, still one read of the database per request.
  const row = await findSession(ctx.db, hashToken(token));
  if (!row) return null;
  const idleMs = ctx.config.limits.sessionIdleTimeoutSeconds * 1000;
  if (row.expires_at <= now || row.last_seen_at + idleMs <= now) {
    await removeSession(ctx.db, row.sessionId);
    return null;
  }
  // Write last_seen_at at most once a minute: the session check stays a single read on most requests.
  if (now - row.last_seen_at >= ctx.config.limits.sessionTouchIntervalSeconds * 1000) {
    await touchSession(ctx.db, row.sessionId, now);
  }
  return {
    sessionId: row.sessionId,
    user: {
      id: row.userId,
      email: row.email,
      name: row.userName,
      twoFactorMethod: row.sign_in_method === "sso" ? "sso" : row.two_factor_method,
    },
    account: { id: row.accountId, name: row.accountName, twoFactorPolicy: row.two_factor_policy },
    role: row.role,
    signInMethod: row.sign_in_method,
    freshProofAt: row.fresh_proof_at,
    expiresAt: row.expires_at,
    signedInAt: row.created_at,
    proof: row.sign_in_proof ?? (row.sign_in_method === "sso" ? "sso" : "email_link"),
    upstreamAmr: parseAmr(row.upstream_amr),
  };
}

/**
 * Sessions that would still be accepted now (before their absolute end, active within the idle timeout), across the
 * whole deployment: one count query, for the metrics' `latchkey_sessions_active` gauge at scrape time.
 */
export async function countActiveSessions(ctx: Pick<AppContext, "db" | "clock" | "config">): Promise<number> {
  const now = ctx.clock.now();
  const row = await ctx.db
    .selectFrom("sessions")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("expires_at", ">", now)
    .where("last_seen_at", ">", now - ctx.config.limits.sessionIdleTimeoutSeconds * 1000)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Signs out: ends the session server-side (every instance sees it on the next request) and records it. */
export async function signOut(ctx: Pick<AppContext, "db" | "clock">, signedIn: SignedIn, info: RequestInfo): Promise<void> {
  await revokeSession(ctx, signedIn.sessionId);
  await recordEvent(ctx, { type: "session.signed_out", userId: signedIn.user.id, accountId: signedIn.account.id, info });
}

/** Ends one session server-side. Idempotent. */
async function revokeSession(ctx: Pick<AppContext, "db">, sessionId: string): Promise<void> {
  await ctx.db.deleteFrom("sessions").where("id", "=", sessionId).execute();
}

/** Ends every session of a user (after a credential change), optionally keeping the one making the change. */
export async function revokeUserSessions(ctx: Pick<AppContext, "db">, userId: string, exceptSessionId?: string): Promise<number> {
  let query = ctx.db.deleteFrom("sessions").where("user_id", "=", userId);
  if (exceptSessionId !== undefined) query = query.where("id", "!=", exceptSessionId);
  const result = await query.executeTakeFirst();
  return Number(result.numDeletedRows);
}

/**
 * The account a new session belongs to: the one the user signed in to last, else the oldest membership. (Choosing
 * among several accounts after sign-in comes with team accounts.) Null when the user belongs to none.
 */
export async function pickAccountForSignIn(ctx: Pick<AppContext, "db">, userId: string): Promise<string | null> {
  const row = await ctx.db
    .selectFrom("memberships")
    .select("account_id")
    .where("user_id", "=", userId)
    .where("sign_in_method", "=", "password")
    .orderBy("last_sign_in_at", (ob) => ob.desc().nullsLast())
    .orderBy("created_at", "asc")
    .executeTakeFirst();
  return row?.account_id ?? null;
}
