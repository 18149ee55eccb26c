import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { generateRecoveryCodes, normalizeRecoveryCode, recoveryCodeHashes } from "../src/auth/recovery-codes.js";

/** Crockford base32 in lower case: no i, l, o, u. */
const SHAPE = /^[0-9abcdefghjkmnpqrstvwxyz]{5}-[0-9abcdefghjkmnpqrstvwxyz]{5}-[0-9abcdefghjkmnpqrstvwxyz]{5}$/;

describe("generateRecoveryCodes", () => {
  it("gives ten distinct codes shaped xxxxx-xxxxx-xxxxx", () => {
    const codes = generateRecoveryCodes(10);
    expect(codes).toHaveLength(10);
    expect(new Set(codes).size).toBe(10);
    for (const code of codes) expect(code).toMatch(SHAPE);
  });

  it("carries at least 64 random bits per code (15 symbols of 32 = 75 bits) and never repeats across batches", () => {
    const all = new Set<string>();
    for (let i = 0; i < 200; i++) for (const code of generateRecoveryCodes(10)) all.add(code);
    expect(all.size).toBe(2000);
    expect(15 * Math.log2(32)).toBeGreaterThanOrEqual(64);
  });

  it("uses the whole alphabet (no symbol is stuck)", () => {
    const seen = new Set(generateRecoveryCodes(400).join("").replace(/-/g, ""));
    expect(seen.size).toBe(32);
  });

  it("every generated code normalizes to itself without the dashes", () => {
    for (const code of generateRecoveryCodes(10)) expect(normalizeRecoveryCode(code)).toBe(code.replace(/-/g, ""));
  });
});

describe("normalizeRecoveryCode", () => {
  const code = "ab1c0-defgh-jk2mn";
  const compact = "ab1c0defghjk2mn";

  it.each([
    ["as shown", code],
    ["upper case", code.toUpperCase()],
    ["mixed case", "Ab1C0-DeFgH-jK2mN"],
    ["without dashes", compact],
    ["with spaces instead of dashes", "ab1c0 defgh jk2mn"],
    ["with extra spaces and dashes", "  ab1c0 - defgh -- jk2mn  "],
    ["in groups of three", "ab1-c0d-efg-hjk-2mn"],
    ["with i read as 1", "abic0-defgh-jk2mn"],
    ["with l read as 1", "abLc0-defgh-jk2mn"],
    ["with o read as 0", "ab1cO-defgh-jk2mn"],
  ])("reads a code typed %s", (_name, input) => {
    expect(normalizeRecoveryCode(input)).toBe(compact);
  });

  it.each([
    ["empty", ""],
    ["spaces only", "   "],
    ["too short", "ab1c0-defgh-jk2m"],
    ["too long", "ab1c0-defgh-jk2mnp"],
    ["a letter outside the alphabet (u)", "ab1c0-defgh-jk2mu"],
    ["punctuation", "ab1c0.defgh.jk2mn"],
    ["fullwidth characters", "ａｂ１ｃ０-ｄｅｆｇｈ-ｊｋ２ｍｎ"],
    ["Arabic-Indic digits", "١٢٣٤٥-١٢٣٤٥-١٢٣٤٥"],
    ["a 6-digit app code", "123456"],
  ])("refuses %s", (_name, input) => {
    expect(normalizeRecoveryCode(input)).toBeNull();
  });
});

describe("recoveryCodeHashes", () => {
  const current = randomBytes(32);
  const previous = randomBytes(32);

  it("hashes under the current key first, then each previous key, and never contains the code", () => {
    const hashes = recoveryCodeHashes({ secretKey: current, previousSecretKeys: [previous] }, "ab1c0defghjk2mn");
    expect(hashes).toHaveLength(2);
    expect(hashes[0]).toBe(recoveryCodeHashes({ secretKey: current, previousSecretKeys: [] }, "ab1c0defghjk2mn")[0]);
    expect(hashes[1]).toBe(recoveryCodeHashes({ secretKey: previous, previousSecretKeys: [] }, "ab1c0defghjk2mn")[0]);
    expect(hashes[0]).not.toBe(hashes[1]);
    for (const hash of hashes) expect(hash).not.toContain("ab1c0");
  });

  it("is keyed: the same code under another key hashes differently", () => {
    const a = recoveryCodeHashes({ secretKey: current, previousSecretKeys: [] }, "ab1c0defghjk2mn")[0];
    const b = recoveryCodeHashes({ secretKey: randomBytes(32), previousSecretKeys: [] }, "ab1c0defghjk2mn")[0];
    expect(a).not.toBe(b);
  });
});
