import type { AppContext } from "../context.js";
import { fail, ok, type Result } from "../errors.js";
import { recordEvent, type TokenActor } from "../audit/events.js";
import { checkName } from "./emails.js";
import { hashToken, newId, newToken } from "./tokens.js";

/**
 * Operator API tokens: the bearer credential of `/api/v1/admin/*`, made and revoked from the CLI. A token is `lk_`
 * and 256 random bits (base64url): the prefix lets secret scanners and people recognise one in a paste or a log.
 * Only its SHA-256 is stored, as for every other token, so a stolen database yields no usable token.
 */
export const API_TOKEN_PREFIX = "lk_";

const API_TOKEN_SHAPE = /^lk_[A-Za-z0-9_-]{43}$/;

export interface ApiTokenView {
  id: string;
  name: string;
  createdAt: number;
  lastUsedAt: number | null;
  revokedAt: number | null;
}

/** A new token, returned once: the caller shows it and forgets it. */
export async function createApiToken(
  ctx: Pick<AppContext, "db" | "clock" | "config">,
  input: { name: string },
): Promise<Result<{ id: string; name: string; token: string }, "name_invalid">> {
  const name = checkName(input.name, ctx.config.limits);
  if (!name.ok) return name;
  const id = newId();
  const token = `${API_TOKEN_PREFIX}${newToken()}`;
  const now = ctx.clock.now();
  await ctx.db
    .insertInto("api_tokens")
    .values({ id, name: name.value, token_hash: hashToken(token), created_at: now, last_used_at: null, revoked_at: null })
    .execute();
  await recordEvent(ctx, { type: "api_token.created", detail: { tokenId: id, tokenName: name.value } });
  return ok({ id, name: name.value, token });
}

/** Every token, oldest first, revoked ones included (never the token: it is not stored). */
export async function listApiTokens(ctx: Pick<AppContext, "db">): Promise<ApiTokenView[]> {
  const rows = await ctx.db
    .selectFrom("api_tokens")
    .select(["id", "name", "created_at", "last_used_at", "revoked_at"])
    .orderBy("created_at", "asc")
    .orderBy("id", "asc")
    .execute();
  return rows.map((r) => ({ id: r.id, name: r.name, createdAt: r.created_at, lastUsedAt: r.last_used_at, revokedAt: r.revoked_at }));
}

/** Revokes a token: every request with it is refused from the next one on, on every instance. Idempotent. */
export async function revokeApiToken(
  ctx: Pick<AppContext, "db" | "clock">,
  id: string,
): Promise<Result<{ name: string; revokedAt: number; alreadyRevoked: boolean }, "not_found">> {
  const row = await ctx.db.selectFrom("api_tokens").select(["name", "revoked_at"]).where("id", "=", id).executeTakeFirst();
  if (!row) return fail("not_found", `There is no API token ${id}. \`latchkey api-token list\` shows the tokens.`);
  if (row.revoked_at !== null) return ok({ name: row.name, revokedAt: row.revoked_at, alreadyRevoked: true });
  const now = ctx.clock.now();
  await ctx.db.updateTable("api_tokens").set({ revoked_at: now }).where("id", "=", id).where("revoked_at", "is", null).execute();
  await recordEvent(ctx, { type: "api_token.revoked", detail: { tokenId: id, tokenName: row.name } });
  return ok({ name: row.name, revokedAt: now, alreadyRevoked: false });
}

/**
 * The token behind a bearer credential, or null when it is malformed, unknown or revoked (one answer for all three).
 * Looked up by its SHA-256 through the unique index, like sessions: the database compares hashes, so the time taken
 * says nothing about how much of a guess was right. Reads the database every time, so a revocation takes effect on
 * every instance at the next request; `last_used_at` is written at most once a minute.
 */
export async function validateApiToken(
  ctx: Pick<AppContext, "db" | "clock" | "config">,
  token: string | undefined,
): Promise<TokenActor | null> {
  if (token === undefined || !API_TOKEN_SHAPE.test(token)) return null;
  const row = await ctx.db
    .selectFrom("api_tokens")
    .select(["id", "name", "last_used_at", "revoked_at"])
    .where("token_hash", "=", hashToken(token))
    .executeTakeFirst();
  if (!row || row.revoked_at !== null) return null;
  const now = ctx.clock.now();
  if (row.last_used_at === null || now - row.last_used_at >= ctx.config.limits.apiTokenTouchIntervalSeconds * 1000) {
    await ctx.db.updateTable("api_tokens").set({ last_used_at: now }).where("id", "=", row.id).execute();
  }
  return { tokenId: row.id, tokenName: row.name };
}
