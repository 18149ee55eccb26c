import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from "node:crypto";

/**
 * AES-256-GCM for secrets Latchkey must read back (TOTP keys, recovery codes waiting to be downloaded). The data key
 * is derived from the configured secret key with HKDF per purpose; the sealed value names its key id, so after a
 * rotation (`LATCHKEY_PREVIOUS_SECRET_KEYS`) old values still open and new ones use the new key.
 *
 * Format: `v1.<keyId>.<iv>.<tag>.<ciphertext>` (base64url parts). `aad` binds a value to its row (e.g. the user id),
 * so a sealed key copied onto another user's row does not open.
 */
export interface SecretBox {
  seal(plaintext: string, aad: string): string;
  open(sealed: string, aad: string): string;
  readonly keyId: string;
}

const IV_BYTES = 12;

/** Derived keys by configured key and purpose: a box is made per message or row, HKDF once per key (issue 10). */
const derived = new WeakMap<Buffer, Map<string, Buffer>>();

function deriveKey(secretKey: Buffer, purpose: string): Buffer {
  let byPurpose = derived.get(secretKey);
  if (byPurpose === undefined) derived.set(secretKey, (byPurpose = new Map()));
  let key = byPurpose.get(purpose);
  if (key === undefined)
    byPurpose.set(purpose, (key = Buffer.from(hkdfSync("sha256", secretKey, Buffer.alloc(0), `latchkey:${purpose}`, 32))));
  return key;
}

/** A short, non-secret fingerprint of a key: which key sealed a value. */
export function keyIdOf(secretKey: Buffer): string {
  return createHash("sha256").update("latchkey-key-id").update(secretKey).digest("hex").slice(0, 12);
}

export function createSecretBox(secretKey: Buffer, previousKeys: Buffer[], purpose: string): SecretBox {
  const keys = new Map<string, Buffer>();
  for (const key of [secretKey, ...previousKeys]) keys.set(keyIdOf(key), deriveKey(key, purpose));
  const keyId = keyIdOf(secretKey);
  const current = keys.get(keyId) as Buffer;
  return {
    keyId,
    seal(plaintext, aad) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv("aes-256-gcm", current, iv);
      cipher.setAAD(Buffer.from(aad, "utf8"));
      const ciphertext = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
      return ["v1", keyId, iv.toString("base64url"), cipher.getAuthTag().toString("base64url"), ciphertext.toString("base64url")].join(".");
    },
    open(sealed, aad) {
      const [version, id, iv, tag, ciphertext] = sealed.split(".");
      if (version !== "v1" || !id || !iv || !tag || ciphertext === undefined) throw new Error("sealed value has an unknown format");
      const key = keys.get(id);
      if (!key) throw new Error(`sealed with key ${id}, which is not configured (LATCHKEY_SECRET_KEY / LATCHKEY_PREVIOUS_SECRET_KEYS)`);
      const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(iv, "base64url"));
      decipher.setAAD(Buffer.from(aad, "utf8"));
      decipher.setAuthTag(Buffer.from(tag, "base64url"));
      return Buffer.concat([decipher.update(Buffer.from(ciphertext, "base64url")), decipher.final()]).toString("utf8");
    },
  };
}
