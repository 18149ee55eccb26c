import { createHash, createHmac, hash, randomBytes, timingSafeEqual } from "node:crypto";

/** Bytes of randomness in every bearer token (session, challenge, link, invitation): 256 bits. */
const TOKEN_BYTES = 32;

/** A new random bearer token, URL-safe. */
export function newToken(): string {
  return randomBytes(TOKEN_BYTES).toString("base64url");
}

/** A new random id for a row: 128 bits, hex. Ids are not secrets. */
export function newId(): string {
  return randomBytes(16).toString("hex");
}

/**
 * What the database keeps of a token: its SHA-256. Tokens carry 256 bits of randomness, so a fast hash is enough
 * (no salt or stretching needed), and a stolen database yields no usable token.
 */
export function hashToken(token: string): string {
  // The one-shot `crypto.hash` (no Hash object): every session check hashes its cookie (issue 10).
  return hash("sha256", token, "hex");
}

/** HMAC-SHA-256 of a value under the secret key, base64url. */
export function sign(key: Buffer, purpose: string, value: string): string {
  return createHmac("sha256", key).update(`${purpose}\0${value}`, "utf8").digest("base64url");
}

/** Compares two strings in time that depends only on their lengths, never on where they differ. */
export function constantTimeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, "utf8");
  const right = Buffer.from(b, "utf8");
  // Compare hashes so unequal lengths still take a full comparison and reveal nothing but "different".
  const l = createHash("sha256").update(left).digest();
  const r = createHash("sha256").update(right).digest();
  return timingSafeEqual(l, r) && left.length === right.length;
}

/** A token of the shape `newToken()` makes; anything else is refused before a database look-up. */
export function looksLikeToken(value: unknown): value is string {
  return typeof value === "string" && /^[A-Za-z0-9_-]{43}$/.test(value);
}
