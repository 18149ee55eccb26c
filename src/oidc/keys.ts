import { generateKeyPair, randomBytes } from "node:crypto";
import { promisify } from "node:util";
import type { AppContext } from "../context.js";
import type { OidcSigningKeyTable } from "../db/schema.js";
import type { Selectable } from "kysely";
import { sql } from "../db/kysely.js";
import { createSecretBox, type SecretBox } from "../auth/secret-box.js";

/**
 * The provider's signing keys (ID tokens, logout tokens), generated on the first start and kept in the database with
 * the private half sealed under the secret key (AES-256-GCM, bound to the kid), so every instance signs with the same
 * key and a stolen database alone signs nothing.
 *
 * RS256 (RSA 2048): the one algorithm OpenID Connect requires every client to support, so no relying party is left out.
 *
 * Rotation (`latchkey keys rotate`): the new key is published at once and signs from `oidcKeyPublishAheadSeconds`
 * later, by when every instance (each looks every `oidcKeyCheckIntervalSeconds`) serves it in the JWKS: no client
 * ever sees a token whose key it cannot fetch. A key that stopped signing stays published while anything it signed can
 * still be presented: an ID token is valid for `oidcIdTokenTtlSeconds`, but clients send it back as `id_token_hint` at
 * logout for as long as their session lasts, which is at most the Latchkey session's absolute lifetime. After both,
 * the key is deleted.
 */

export const SIGNING_ALG = "RS256";
const RSA_BITS = 2048;
const generate = promisify(generateKeyPair);

/** A private JWK as oidc-provider takes it. */
export type PrivateJwk = Record<string, unknown> & { kid: string; alg: string; use: "sig" };

export interface KeySet {
  /** Signing key first, then the other published keys. */
  keys: PrivateJwk[];
  /** The kid that signs now. */
  signingKid: string;
  /** Changes whenever the published set or the signing key changes: the provider is rebuilt then. */
  fingerprint: string;
}

type KeyRow = Selectable<OidcSigningKeyTable>;

function box(ctx: Pick<AppContext, "config">): SecretBox {
  return createSecretBox(ctx.config.secretKey, ctx.config.previousSecretKeys, "oidc-signing-key");
}

async function newKeyRow(ctx: Pick<AppContext, "config">, createdAt: number, signsFrom: number): Promise<KeyRow> {
  const { privateKey } = await generate("rsa", { modulusLength: RSA_BITS });
  const kid = randomBytes(12).toString("base64url");
  const jwk = privateKey.export({ format: "jwk" });
  return {
    kid,
    alg: SIGNING_ALG,
    private_jwk_sealed: box(ctx).seal(JSON.stringify(jwk), kid),
    created_at: createdAt,
    signs_from: signsFrom,
  };
}

/** How long a key stays published after a newer one took over signing (see above). */
export function retentionMs(ctx: Pick<AppContext, "config">): number {
  const { limits } = ctx.config;
  return (limits.sessionAbsoluteTimeoutSeconds + limits.oidcIdTokenTtlSeconds) * 1000;
}

/** Oldest first; the newest key whose time has come signs. */
function order(rows: KeyRow[]): KeyRow[] {
  return [...rows].sort((a, b) => a.signs_from - b.signs_from || a.created_at - b.created_at || a.kid.localeCompare(b.kid));
}

/** Any number, the same in every instance: the PostgreSQL advisory lock under which the first key is made. */
const FIRST_KEY_LOCK = 7_274_503_118;

/**
 * Makes the first signing key unless one exists. With PostgreSQL, instances starting at the same moment take turns
 * (an advisory lock for the transaction), so exactly one key is made and every instance signs with it. SQLite serves
 * one process, which makes its key once.
 */
async function ensureFirstKey(ctx: Pick<AppContext, "db" | "clock" | "config" | "dialect">): Promise<void> {
  const now = ctx.clock.now();
  const first = await newKeyRow(ctx, now, now);
  try {
    await ctx.db.transaction().execute(async (tx) => {
      if (ctx.dialect === "postgres") await sql`select pg_advisory_xact_lock(${FIRST_KEY_LOCK})`.execute(tx);
      const existing = await tx.selectFrom("oidc_signing_keys").select("kid").executeTakeFirst();
      if (!existing) await tx.insertInto("oidc_signing_keys").values(first).execute();
    });
  } catch (error) {
    // Another process wrote first (SQLite refuses the second writer of a stale read): its key is the one.
    const made = await ctx.db.selectFrom("oidc_signing_keys").select("kid").executeTakeFirst();
    if (!made) throw error;
  }
}

/** The keys to serve now: makes the first key when there is none, and deletes keys past their retention. */
export async function loadKeySet(ctx: Pick<AppContext, "db" | "clock" | "config" | "dialect">): Promise<KeySet> {
  let rows = order(await ctx.db.selectFrom("oidc_signing_keys").selectAll().execute());
  if (rows.length === 0) {
    await ensureFirstKey(ctx);
    rows = order(await ctx.db.selectFrom("oidc_signing_keys").selectAll().execute());
  }
  const now = ctx.clock.now();
  const active = rows.filter((r) => r.signs_from <= now);
  const pending = rows.filter((r) => r.signs_from > now);
  // Only with clocks apart between instances can every key still be ahead: then the earliest one signs.
  if (active.length === 0) active.push(pending.shift() as KeyRow);
  const signing = active[active.length - 1] as KeyRow;
  // A key retired when the next active key started signing; it is dropped once its retention has passed.
  const expired = active.filter((r, i) => {
    const next = active[i + 1];
    return next !== undefined && next.signs_from + retentionMs(ctx) <= now;
  });
  if (expired.length > 0) {
    await ctx.db
      .deleteFrom("oidc_signing_keys")
      .where(
        "kid",
        "in",
        expired.map((r) => r.kid),
      )
      .execute();
  }
  const published = [signing, ...active.filter((r) => r !== signing && !expired.includes(r)).reverse(), ...pending];
  const sealer = box(ctx);
  const keys = published.map((r) => {
    const jwk = JSON.parse(sealer.open(r.private_jwk_sealed, r.kid)) as Record<string, unknown>;
    return { ...jwk, kid: r.kid, alg: r.alg, use: "sig" as const };
  });
  return { keys, signingKid: signing.kid, fingerprint: published.map((r) => r.kid).join(",") };
}

export interface RotatedKey {
  kid: string;
  signsFrom: number;
  /** The keys it replaces, each published until the given time. */
  previous: Array<{ kid: string; publishedUntil: number }>;
}

/** `latchkey keys rotate`: a new key, published now, signing once every instance has had time to publish it. */
export async function rotateSigningKey(ctx: Pick<AppContext, "db" | "clock" | "config" | "dialect">): Promise<RotatedKey> {
  await loadKeySet(ctx);
  const now = ctx.clock.now();
  const signsFrom = now + ctx.config.limits.oidcKeyPublishAheadSeconds * 1000;
  const row = await newKeyRow(ctx, now, signsFrom);
  await ctx.db.insertInto("oidc_signing_keys").values(row).execute();
  const all = order(await ctx.db.selectFrom("oidc_signing_keys").selectAll().execute());
  // Each older key is retired by the one after it and stays published for the retention after that.
  const previous = all.flatMap((r, i) => {
    const next = all[i + 1];
    return r.kid === row.kid || next === undefined ? [] : [{ kid: r.kid, publishedUntil: next.signs_from + retentionMs(ctx) }];
  });
  return { kid: row.kid, signsFrom, previous };
}

/** The published keys' kids and when each signs(ed) from, for `latchkey keys list`. */
export async function listSigningKeys(ctx: Pick<AppContext, "db">): Promise<Array<{ kid: string; alg: string; signsFrom: number }>> {
  const rows = order(await ctx.db.selectFrom("oidc_signing_keys").selectAll().execute());
  return rows.map((r) => ({ kid: r.kid, alg: r.alg, signsFrom: r.signs_from }));
}
