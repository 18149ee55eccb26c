import { createHash, createHmac, hkdfSync, randomBytes } from "node:crypto";
import type { AppContext } from "../context.js";
import { constantTimeEqual } from "./tokens.js";

/**
 * Device cookies, after OWASP's "Slow Down Online Guessing Attacks with Device Cookies": a browser that completed a
 * sign-in (password and second factor) gets a signed cookie naming its user. At the password step such a browser
 * counts its wrong passwords against its own counter instead of the email's, so an attacker who spends the email's
 * budget does not lock its owner out of the browsers they already use.
 *
 * Stateless: `v1.<userId>.<nonce>.<issuedAtSeconds>.<mac>`, the MAC an HMAC-SHA-256 under a key derived (HKDF) from
 * the secret key, over the user id, the nonce, the issue time and a fingerprint of the user's current password hash.
 * So nothing is stored, and the cookies of a user are revoked by what a person does when they fear for their
 * password: changing it (every device cookie of theirs stops working at once). Rotating the secret key (and then
 * dropping the old one from the previous keys) revokes everyone's. The nonce names the device's own counter.
 */
const VERSION = "v1";
const NONCE_BYTES = 16;
const SHAPE = /^v1\.([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]{22})\.(\d{1,12})\.([A-Za-z0-9_-]{43})$/;

export interface TrustedDevice {
  /** The cookie's random part: its own attempt counter is keyed by it. */
  nonce: string;
}

/** The cookie MAC key per configured key, derived once (issue 10). */
const deviceKeys = new WeakMap<Buffer, Buffer>();

function deviceKey(secretKey: Buffer): Buffer {
  let key = deviceKeys.get(secretKey);
  if (key === undefined)
    deviceKeys.set(secretKey, (key = Buffer.from(hkdfSync("sha256", secretKey, Buffer.alloc(0), "latchkey:device-cookie", 32))));
  return key;
}

function mac(key: Buffer, userId: string, nonce: string, issuedAtSeconds: string, passwordHash: string): string {
  // The hash of the password hash, not the hash itself: the MAC input needs only to change when the password does.
  const passwordFingerprint = createHash("sha256").update(passwordHash, "utf8").digest("hex");
  return createHmac("sha256", key)
    .update(`${VERSION}\0${userId}\0${nonce}\0${issuedAtSeconds}\0${passwordFingerprint}`, "utf8")
    .digest("base64url");
}

/** A new device cookie value for a user with a password (its current hash binds the cookie to that password). */
export function issueDeviceToken(ctx: Pick<AppContext, "config" | "clock">, user: { id: string; passwordHash: string }): string {
  const nonce = randomBytes(NONCE_BYTES).toString("base64url");
  const issuedAt = String(Math.floor(ctx.clock.now() / 1000));
  return [VERSION, user.id, nonce, issuedAt, mac(deviceKey(ctx.config.secretKey), user.id, nonce, issuedAt, user.passwordHash)].join(".");
}

/** A device cookie value for the user who just completed a sign-in, or null when they have no password (nothing to protect). */
export async function deviceTokenFor(ctx: Pick<AppContext, "db" | "config" | "clock">, userId: string): Promise<string | null> {
  const user = await ctx.db.selectFrom("users").select("password_hash").where("id", "=", userId).executeTakeFirst();
  return user?.password_hash ? issueDeviceToken(ctx, { id: userId, passwordHash: user.password_hash }) : null;
}

/**
 * The trusted device behind a cookie value, if it is a genuine, unexpired cookie of exactly this user issued under
 * their current password; otherwise null (a missing, malformed, forged, stale or other user's cookie are all just
 * "untrusted"). Pure computation over the user row the caller already read, so it adds no database work.
 */
export function trustedDevice(
  ctx: Pick<AppContext, "config" | "clock">,
  token: string | undefined,
  user: { id: string; passwordHash: string | null } | undefined,
): TrustedDevice | null {
  if (token === undefined || user === undefined || user.passwordHash === null) return null;
  const parts = SHAPE.exec(token);
  if (!parts) return null;
  const [, userId, nonce, issuedAt, given] = parts as unknown as [string, string, string, string, string];
  if (userId !== user.id) return null;
  const ageSeconds = Math.floor(ctx.clock.now() / 1000) - Number(issuedAt);
  // Only the upper bound: a cookie from an instance whose clock runs a little ahead is still genuine.
  if (ageSeconds >= ctx.config.limits.deviceCookieMaxAgeSeconds) return null;
  // Previous secret keys still count, so a key rotation does not untrust every browser at once.
  const genuine = [ctx.config.secretKey, ...ctx.config.previousSecretKeys].some((key) =>
    constantTimeEqual(given, mac(deviceKey(key), userId, nonce, issuedAt, user.passwordHash as string)),
  );
  return genuine ? { nonce } : null;
}
