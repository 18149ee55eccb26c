import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createSecretBox, keyIdOf } from "../src/auth/secret-box.js";

const SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

/** Flips one bit of the decoded bytes of part `index` of a sealed value (so the change is never lost in base64 padding). */
function tamper(sealed: string, index: number): string {
  const parts = sealed.split(".");
  const raw = Buffer.from(parts[index] as string, "base64url");
  raw[0] = (raw[0] as number) ^ 0x01;
  parts[index] = raw.toString("base64url");
  return parts.join(".");
}

describe("secret box (AES-256-GCM)", () => {
  const key = randomBytes(32);
  const box = createSecretBox(key, [], "totp");

  it("opens what it sealed", () => {
    const sealed = box.seal(SECRET, "user-1");
    expect(box.open(sealed, "user-1")).toBe(SECRET);
    expect(box.open(box.seal("", "user-1"), "user-1")).toBe("");
    expect(box.open(box.seal("ünïcødé ✓", "user-1"), "user-1")).toBe("ünïcødé ✓");
  });

  it("names the key that sealed it, and never holds the plaintext", () => {
    const sealed = box.seal(SECRET, "user-1");
    const [version, keyId, iv, tag, ciphertext] = sealed.split(".");
    expect(version).toBe("v1");
    expect(keyId).toBe(keyIdOf(key));
    expect(box.keyId).toBe(keyIdOf(key));
    expect(Buffer.from(iv as string, "base64url")).toHaveLength(12);
    expect(Buffer.from(tag as string, "base64url")).toHaveLength(16);
    expect(Buffer.from(ciphertext as string, "base64url")).toHaveLength(SECRET.length);
    expect(sealed).not.toContain(SECRET);
    expect(sealed).not.toContain(Buffer.from(SECRET).toString("base64url"));
  });

  it("uses a new IV each time: the same value seals differently", () => {
    const a = box.seal(SECRET, "user-1");
    const b = box.seal(SECRET, "user-1");
    expect(a).not.toBe(b);
    expect(a.split(".")[2]).not.toBe(b.split(".")[2]);
  });

  it.each([
    ["the IV", 2],
    ["the tag", 3],
    ["the ciphertext", 4],
  ])("refuses a value whose %s was changed", (_name, index) => {
    const sealed = box.seal(SECRET, "user-1");
    expect(() => box.open(tamper(sealed, index), "user-1")).toThrow();
  });

  it("refuses a truncated ciphertext or a missing part", () => {
    const sealed = box.seal(SECRET, "user-1");
    const parts = sealed.split(".");
    expect(() => box.open([...parts.slice(0, 4), (parts[4] as string).slice(0, -4)].join("."), "user-1")).toThrow();
    expect(() => box.open(parts.slice(0, 4).join("."), "user-1")).toThrow(/unknown format/);
    expect(() => box.open(["v2", ...parts.slice(1)].join("."), "user-1")).toThrow(/unknown format/);
    expect(() => box.open("", "user-1")).toThrow();
  });

  it("refuses a different AAD: a value copied onto another row does not open", () => {
    const sealed = box.seal(SECRET, "user-1");
    expect(() => box.open(sealed, "user-2")).toThrow();
    expect(() => box.open(sealed, "")).toThrow();
  });

  it("keys each purpose separately: a TOTP key does not open as another purpose", () => {
    const sealed = box.seal(SECRET, "user-1");
    expect(() => createSecretBox(key, [], "recovery-code-reveal").open(sealed, "user-1")).toThrow();
  });

  it("refuses a value sealed under another key", () => {
    const sealed = createSecretBox(randomBytes(32), [], "totp").seal(SECRET, "user-1");
    expect(() => box.open(sealed, "user-1")).toThrow(/not configured/);
  });

  it("after a key rotation, opens a value sealed under the previous key only while that key is configured", () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const sealedUnderOld = createSecretBox(oldKey, [], "totp").seal(SECRET, "user-1");

    const rotated = createSecretBox(newKey, [oldKey], "totp");
    expect(rotated.open(sealedUnderOld, "user-1")).toBe(SECRET);
    // New values use the new key.
    const resealed = rotated.seal(SECRET, "user-1");
    expect(resealed.split(".")[1]).toBe(keyIdOf(newKey));
    expect(rotated.keyId).toBe(keyIdOf(newKey));
    // …which the old key alone cannot open.
    expect(() => createSecretBox(oldKey, [], "totp").open(resealed, "user-1")).toThrow();

    const withoutOld = createSecretBox(newKey, [], "totp");
    expect(() => withoutOld.open(sealedUnderOld, "user-1")).toThrow(/not configured/);
    expect(withoutOld.open(resealed, "user-1")).toBe(SECRET);
  });
});
