import type { Kysely } from "kysely";
import type { AppContext, RequestInfo } from "../context.js";
import type { Challenge, Database } from "../db/schema.js";
import { hashToken, looksLikeToken, newId, newToken } from "./tokens.js";

/**
 * A new challenge for a user whose password was right. The token goes only into the challenge cookie. With
 * `firstLinkCounted`, the caller queues the first sign-in link in the same transaction (`queueSignInLink`): it is
 * counted here, as "Send a new link" counts each further one, so the limits and the cooldown start from it.
 */
export async function createChallenge(
  ctx: Pick<AppContext, "db" | "clock" | "config">,
  input: { userId: string; info: RequestInfo; firstLinkCounted: boolean },
): Promise<{ token: string; challenge: Challenge }> {
  const now = ctx.clock.now();
  const token = newToken();
  const challenge: Challenge = {
    id: newId(),
    token_hash: hashToken(token),
    user_id: input.userId,
    created_at: now,
    expires_at: now + ctx.config.limits.challengeTtlSeconds * 1000,
    consumed_at: null,
    failed_attempts: 0,
    links_sent: input.firstLinkCounted ? 1 : 0,
    last_link_sent_at: input.firstLinkCounted ? now : null,
    ip: input.info.ip,
    user_agent: input.info.userAgent?.slice(0, 512) ?? null,
  };
  await ctx.db.insertInto("challenges").values(challenge).execute();
  return { token, challenge };
}

/** The live challenge behind a cookie value, or null (unknown, expired or already used). */
export async function findLiveChallenge(ctx: Pick<AppContext, "db" | "clock">, token: string | undefined): Promise<Challenge | null> {
  if (!looksLikeToken(token)) return null;
  const row = await ctx.db.selectFrom("challenges").selectAll().where("token_hash", "=", hashToken(token)).executeTakeFirst();
  if (!row || row.consumed_at !== null || row.expires_at <= ctx.clock.now()) return null;
  return row;
}

/**
 * Marks the challenge used. The guarded UPDATE is the race barrier: of any number of parallel redemptions only one
 * sees a row change, on SQLite (one writer) and PostgreSQL (row lock, then re-check of the WHERE) alike.
 */
export async function consumeChallenge(db: Kysely<Database>, challengeId: string, now: number): Promise<boolean> {
  const result = await db
    .updateTable("challenges")
    .set({ consumed_at: now })
    .where("id", "=", challengeId)
    .where("consumed_at", "is", null)
    .where("expires_at", ">", now)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/** The address a challenge's sign-in link goes to (shown on "Check your email"). */
export async function challengeEmail(ctx: Pick<AppContext, "db">, challenge: Challenge): Promise<string> {
  const user = await ctx.db.selectFrom("users").select("email").where("id", "=", challenge.user_id).executeTakeFirstOrThrow();
  return user.email;
}
