import { generate, generateSync, verify } from "otplib";
import { describe, expect, it } from "vitest";
import { formatSecretForManualEntry, matchTotp, newTotpSecret, parseTotpCode, totpUri } from "../src/auth/totp.js";

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

/** RFC 6238 Appendix B: the seeds are ASCII strings used as raw key bytes, 8-digit codes, 30 s steps from T0 = 0. */
const RFC6238 = {
  sha1: {
    seed: "12345678901234567890",
    codes: {
      59: "94287082",
      1111111109: "07081804",
      1111111111: "14050471",
      1234567890: "89005924",
      2000000000: "69279037",
      20000000000: "65353130",
    },
  },
  sha256: {
    seed: "12345678901234567890123456789012",
    codes: {
      59: "46119246",
      1111111109: "68084774",
      1111111111: "67062674",
      1234567890: "91819424",
      2000000000: "90698825",
      20000000000: "77737706",
    },
  },
  sha512: {
    seed: "1234567890123456789012345678901234567890123456789012345678901234",
    codes: {
      59: "90693936",
      1111111109: "25091201",
      1111111111: "99943326",
      1234567890: "93441116",
      2000000000: "38618901",
      20000000000: "47863826",
    },
  },
} as const;

/** RFC 4226 Appendix D: HOTP, secret "12345678901234567890", counters 0–9, 6 digits. */
const RFC4226 = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"];

describe("otplib against the RFC test vectors", () => {
  for (const [algorithm, { seed, codes }] of Object.entries(RFC6238)) {
    for (const [time, code] of Object.entries(codes)) {
      it(`RFC 6238 ${algorithm.toUpperCase()} at T=${time} → ${code}`, async () => {
        const options = {
          secret: bytes(seed),
          epoch: Number(time),
          digits: 8,
          algorithm: algorithm as "sha1" | "sha256" | "sha512",
          period: 30,
        } as const;
        expect(generateSync(options)).toBe(code);
        expect(await generate(options)).toBe(code);
        const checked = await verify({ ...options, token: code });
        expect(checked.valid).toBe(true);
      });
    }
  }

  it("RFC 6238 SHA1 vectors hold with the key given in base32 (as apps and our database hold it)", () => {
    // base32("12345678901234567890")
    const base32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    for (const [time, code] of Object.entries(RFC6238.sha1.codes)) {
      expect(generateSync({ secret: base32, epoch: Number(time), digits: 8 })).toBe(code);
      // The last six digits are the 6-digit code (the truncation is the same, only the modulus differs).
      expect(generateSync({ secret: base32, epoch: Number(time) })).toBe(code.slice(-6));
    }
  });

  RFC4226.forEach((code, counter) => {
    it(`RFC 4226 HOTP counter ${counter} → ${code}`, async () => {
      expect(generateSync({ strategy: "hotp", secret: bytes("12345678901234567890"), counter })).toBe(code);
      expect(await generate({ strategy: "hotp", secret: bytes("12345678901234567890"), counter })).toBe(code);
    });
  });
});

describe("matchTotp (our use of the library)", () => {
  const secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
  const nowMs = 1111111111_000; // step 37037037
  const step = Math.floor(nowMs / 1000 / 30);
  const codeAt = (offset: number): string => generateSync({ secret, epoch: nowMs / 1000 + offset * 30 });
  const match = (code: string, afterStep: number | null = null): Promise<number | null> =>
    matchTotp({ secret, code, nowMs, stepSeconds: 30, driftSteps: 1, afterStep });

  it("accepts the current step and one step either side, and returns the matched step", async () => {
    expect(await match(codeAt(0))).toBe(step);
    expect(await match(codeAt(-1))).toBe(step - 1);
    expect(await match(codeAt(1))).toBe(step + 1);
  });

  it("refuses two steps either side", async () => {
    expect(await match(codeAt(-2))).toBeNull();
    expect(await match(codeAt(2))).toBeNull();
  });

  it("refuses a step that is not newer than the last accepted one (replay, or an older code)", async () => {
    expect(await match(codeAt(0), step)).toBeNull();
    expect(await match(codeAt(-1), step)).toBeNull();
    expect(await match(codeAt(0), step - 1)).toBe(step);
    expect(await match(codeAt(1), step)).toBe(step + 1);
  });

  it("refuses a wrong code", async () => {
    const near = new Set([-1, 0, 1].map(codeAt));
    const wrong = ["000000", "123456", "999999"].find((c) => !near.has(c)) as string;
    expect(await match(wrong)).toBeNull();
  });
});

describe("totpUri", () => {
  it("spells out every parameter in the Google Authenticator key-URI format", () => {
    expect(
      totpUri({ issuer: "Latchkey", accountName: "ana@example.com", secret: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", stepSeconds: 30 }),
    ).toBe(
      "otpauth://totp/Latchkey:ana%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Latchkey&algorithm=SHA1&digits=6&period=30",
    );
  });

  it("URI-encodes the label and the parameters (an email with +, a product name with a space)", () => {
    const uri = totpUri({
      issuer: "Acme Sign In",
      accountName: "ana+work@example.com",
      secret: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
      stepSeconds: 30,
    });
    expect(uri).toBe(
      "otpauth://totp/Acme%20Sign%20In:ana%2Bwork%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Acme%20Sign%20In&algorithm=SHA1&digits=6&period=30",
    );
    // No raw space or '+' anywhere: a '+' would be read back as a space by some apps.
    expect(uri).not.toMatch(/[ +]/);
    const parsed = new URL(uri);
    expect(parsed.protocol).toBe("otpauth:");
    expect(parsed.host).toBe("totp");
    expect(decodeURIComponent(parsed.pathname.slice(1))).toBe("Acme Sign In:ana+work@example.com");
    expect(parsed.searchParams.get("issuer")).toBe("Acme Sign In");
    expect(parsed.searchParams.get("secret")).toBe("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP");
  });

  it("encodes a colon or ampersand in the issuer so the label and query stay unambiguous", () => {
    const uri = totpUri({ issuer: "A&B: Login", accountName: "x@example.com", secret: "JBSWY3DPEHPK3PXP", stepSeconds: 30 });
    expect(uri.startsWith("otpauth://totp/A%26B%3A%20Login:x%40example.com?")).toBe(true);
    expect(new URL(uri).searchParams.get("issuer")).toBe("A&B: Login");
    expect([...new URL(uri).searchParams.keys()]).toEqual(["secret", "issuer", "algorithm", "digits", "period"]);
  });

  it("carries the configured step", () => {
    expect(
      new URL(totpUri({ issuer: "L", accountName: "a@b.c", secret: "JBSWY3DPEHPK3PXP", stepSeconds: 60 })).searchParams.get("period"),
    ).toBe("60");
  });
});

describe("newTotpSecret", () => {
  it("is 32 base32 characters, unpadded: 20 random bytes", async () => {
    const secrets = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const secret = await newTotpSecret();
      expect(secret).toMatch(/^[A-Z2-7]{32}$/);
      secrets.add(secret);
    }
    expect(secrets.size).toBe(50);
  });

  it("works with the library that checks the codes", async () => {
    const secret = await newTotpSecret();
    const nowMs = Date.now();
    const code = generateSync({ secret, epoch: Math.floor(nowMs / 1000) });
    expect(await matchTotp({ secret, code, nowMs, stepSeconds: 30, driftSteps: 1, afterStep: null })).toBe(Math.floor(nowMs / 30_000));
  });

  it("is shown for manual entry in groups of four", () => {
    expect(formatSecretForManualEntry("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")).toBe("ABCD EFGH IJKL MNOP QRST UVWX YZ23 4567");
  });
});

describe("parseTotpCode", () => {
  it.each([
    ["123456", "123456"],
    ["123 456", "123456"],
    ["000000", "000000"],
    [" 654321 ", "654321"],
  ])("accepts %j as %s", (input, code) => {
    expect(parseTotpCode(input)).toEqual({ ok: true, code });
  });

  it.each([
    ["empty", ""],
    ["spaces only", "   "],
    ["5 digits", "12345"],
    ["7 digits", "1234567"],
    ["letters", "abcdef"],
    ["digits and letters", "12345a"],
    ["Arabic-Indic digits", "١٢٣٤٥٦"],
    ["fullwidth digits", "１２３４５６"],
    ["Devanagari digits", "१२३४५६"],
    ["superscript digits", "¹²³⁴⁵⁶"],
    ["three groups of two", "12 34 56"],
    ["two spaces in the middle", "123  456"],
    ["a tab in the middle", "123\t456"],
    ["a non-breaking space in the middle", "123\u00a0456"],
    ["a dash in the middle", "123-456"],
    ["a sign", "+123456"],
    ["a decimal", "12345.6"],
    ["a newline inside", "123\n456"],
    ["a NUL", "123456\u0000"],
  ])("refuses %s", (_name, input) => {
    const result = parseTotpCode(input);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.message).toMatch(/6-digit|6 digits/);
  });
});
