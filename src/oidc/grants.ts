import type { Kysely, Selectable } from "kysely";
import type { GrantInstance, KoaContextWithOIDC } from "oidc-provider";
import type { AppContext } from "../context.js";
import type { Database, OidcGrantTable } from "../db/schema.js";
import type { ClaimSource } from "./claims.js";

/**
 * Each grant to a client is tied to the Latchkey session that made it (`oidc_grants`): the client's codes, access and
 * refresh tokens are good exactly while that session is. This is how "no token for anyone the rest of Latchkey
 * would refuse" holds after sign-in too: the provider loads the account for every code exchange, refresh and UserInfo
 * call through `liveGrant`, which answers only while the session lives (idle and absolute timeouts included), the
 * membership exists and the account's "Require auth app" does not hold the person at setup. When the session ends for
 * any reason, the logout sweep (logout.ts) revokes the grant and tells the client.
 */

/** What our interaction hands the provider beside the login: the Latchkey session it came from. */
export interface LatchkeyResult {
  sessionId: string;
  accountId: string;
}

export function latchkeyResultOf(result: Record<string, unknown> | undefined): LatchkeyResult | undefined {
  const value = result?.["latchkey"] as Partial<LatchkeyResult> | undefined;
  if (typeof value?.sessionId === "string" && typeof value.accountId === "string")
    return { sessionId: value.sessionId, accountId: value.accountId };
  return undefined;
}

/**
 * oidc-provider's `loadExistingGrant`, called when the authorization resumes after our interaction. First-party
 * clients skip consent: the grant covers what was asked. A grant is reused only within the same Latchkey session and
 * account; otherwise a new one is made, so a grant never outlives the session it was given in.
 */
export async function loadGrantFor(ctx: Pick<AppContext, "db" | "clock">, koa: KoaContextWithOIDC): Promise<GrantInstance | undefined> {
  const { oidc } = koa;
  const latchkey = latchkeyResultOf(oidc.result);
  const client = oidc.client;
  const accountId = oidc.session.accountId;
  // Without our interaction's result there is nothing to grant: the provider then asks for the interaction.
  if (!latchkey || !client || !accountId) return undefined;
  oidc.session.ensureClientContainer(client.clientId);
  const sid = oidc.session.sidFor(client.clientId) as string;
  const { Grant } = oidc.provider;

  let grant: GrantInstance | undefined;
  const existingId = oidc.session.grantIdFor(client.clientId);
  if (existingId) {
    const link = await ctx.db.selectFrom("oidc_grants").selectAll().where("grant_id", "=", existingId).executeTakeFirst();
    if (link && link.session_id === latchkey.sessionId && link.account_id === latchkey.accountId && link.ended_at === null) {
      grant = await Grant.find(existingId);
    }
  }
  const fresh = grant === undefined;
  grant ??= new Grant({ accountId, clientId: client.clientId });
  grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(" "));
  const claims = [...oidc.requestParamClaims];
  if (claims.length > 0) grant.addOIDCClaims(claims);
  const grantId = await grant.save();
  if (fresh) {
    await ctx.db
      .insertInto("oidc_grants")
      .values({
        grant_id: grantId,
        session_id: latchkey.sessionId,
        user_id: accountId,
        account_id: latchkey.accountId,
        client_id: client.clientId,
        sid,
        created_at: ctx.clock.now(),
        ended_at: null,
      })
      .onConflict((oc) => oc.column("grant_id").doNothing())
      .execute();
  }
  return grant;
}

export interface LiveGrant extends ClaimSource {
  grantId: string;
  sessionId: string;
  clientId: string;
}

/** The grant's person and account while its Latchkey session and membership are alive, else null. */
export async function liveGrant(ctx: Pick<AppContext, "db" | "clock" | "config">, grantId: string): Promise<LiveGrant | null> {
  const row = await ctx.db
    .selectFrom("oidc_grants as g")
    .innerJoin("sessions as s", (join) => join.onRef("s.id", "=", "g.session_id").onRef("s.user_id", "=", "g.user_id"))
    .innerJoin("users as u", "u.id", "g.user_id")
    .innerJoin("memberships as m", (join) => join.onRef("m.user_id", "=", "g.user_id").onRef("m.account_id", "=", "g.account_id"))
    .innerJoin("accounts as a", "a.id", "g.account_id")
    .select([
      "g.grant_id",
      "g.session_id",
      "g.client_id",
      "g.user_id",
      "g.account_id",
      "g.ended_at",
      "s.expires_at",
      "s.last_seen_at",
      "u.email",
      "u.name",
      "u.two_factor_method",
      "a.name as account_name",
      "a.two_factor_policy",
      "m.role",
      "m.sign_in_method",
    ])
    .where("g.grant_id", "=", grantId)
    .executeTakeFirst();
  if (!row || row.ended_at !== null) return null;
  const now = ctx.clock.now();
  if (row.expires_at <= now || row.last_seen_at + ctx.config.limits.sessionIdleTimeoutSeconds * 1000 <= now) return null;
  // Held at the auth-app setup by "Require auth app", as everywhere else in Latchkey (policy.ts, mustSetUpAuthApp).
  if (row.two_factor_policy === "auth_app_required" && row.sign_in_method === "password" && row.two_factor_method !== "auth_app")
    return null;
  return {
    grantId: row.grant_id,
    sessionId: row.session_id,
    clientId: row.client_id,
    userId: row.user_id,
    email: row.email,
    name: row.name,
    accountId: row.account_id,
    accountName: row.account_name,
    role: row.role,
  };
}

/**
 * A client refreshing its tokens is the person using the product: it counts as activity of the Latchkey session (at
 * most one write a minute, as for requests), so the idle timeout does not end a session someone is using elsewhere.
 * The absolute timeout still ends it.
 */
export async function touchSession(ctx: Pick<AppContext, "db" | "clock" | "config">, sessionId: string): Promise<void> {
  const now = ctx.clock.now();
  await ctx.db
    .updateTable("sessions")
    .set({ last_seen_at: now })
    .where("id", "=", sessionId)
    .where("last_seen_at", "<=", now - ctx.config.limits.sessionTouchIntervalSeconds * 1000)
    .execute();
}

export type GrantLink = Selectable<OidcGrantTable>;

/**
 * Grants whose Latchkey session has ended (signed out, expired, idle, revoked by a removal, a support reset or a
 * credential change), whose membership or user is gone, or which were ended directly (a password change).
 */
export async function endedGrants(ctx: Pick<AppContext, "db" | "clock" | "config">, limit: number): Promise<GrantLink[]> {
  const now = ctx.clock.now();
  const idleMs = ctx.config.limits.sessionIdleTimeoutSeconds * 1000;
  return ctx.db
    .selectFrom("oidc_grants as g")
    .leftJoin("sessions as s", (join) => join.onRef("s.id", "=", "g.session_id").onRef("s.user_id", "=", "g.user_id"))
    .leftJoin("memberships as m", (join) => join.onRef("m.user_id", "=", "g.user_id").onRef("m.account_id", "=", "g.account_id"))
    .selectAll("g")
    .where((eb) =>
      eb.or([
        eb("g.ended_at", "is not", null),
        eb("s.id", "is", null),
        eb("m.id", "is", null),
        eb("s.expires_at", "<=", now),
        eb("s.last_seen_at", "<=", now - idleMs),
      ]),
    )
    .orderBy("g.created_at")
    .limit(limit)
    .execute();
}

/** Claims a grant for the sweep: of instances sweeping at once, exactly one deletes the row and goes on. */
export async function claimEndedGrant(db: Kysely<Database>, grantId: string): Promise<boolean> {
  const result = await db.deleteFrom("oidc_grants").where("grant_id", "=", grantId).executeTakeFirst();
  return Number(result.numDeletedRows) === 1;
}

/** Ends every client session of a user (a password change): the sweep tells the clients. */
export async function endGrantsOfUser(ctx: Pick<AppContext, "db" | "clock">, userId: string): Promise<void> {
  await ctx.db
    .updateTable("oidc_grants")
    .set({ ended_at: ctx.clock.now() })
    .where("user_id", "=", userId)
    .where("ended_at", "is", null)
    .execute();
}
