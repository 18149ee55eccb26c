import type * as Otplib from "otplib";

/** otplib, loaded on the first use, not at start: a server that never sets up an auth app never pays its memory (issue 10). */
let otplib: Promise<typeof Otplib> | undefined;
const library = (): Promise<typeof Otplib> => (otplib ??= import("otplib"));

/** A new TOTP key: 20 random bytes (RFC 4226 §4 recommends 160 bits), unpadded base32 as apps expect. */
export async function newTotpSecret(): Promise<string> {
  return (await library()).generateSecret({ length: 20 });
}

/**
 * The Google Authenticator key URI. Built by hand because the format needs every parameter spelled out
 * (otplib omits the defaults, and some apps mis-handle a missing `algorithm`/`digits`/`period`).
 */
export function totpUri(input: { issuer: string; accountName: string; secret: string; stepSeconds: number }): string {
  const label = `${encodeURIComponent(input.issuer)}:${encodeURIComponent(input.accountName)}`;
  const params = new URLSearchParams({
    secret: input.secret,
    issuer: input.issuer,
    algorithm: "SHA1",
    digits: "6",
    period: String(input.stepSeconds),
  });
  return `otpauth://totp/${label}?${params.toString().replace(/\+/g, "%20")}`;
}

/** The key in groups of four, for typing into an app by hand. */
export function formatSecretForManualEntry(secret: string): string {
  return secret.match(/.{1,4}/g)?.join(" ") ?? secret;
}

export type CodeShape = { ok: true; code: string } | { ok: false; message: string };

/**
 * What counts as an authentication code: six ASCII digits, optionally as two groups of three with one space (the way
 * the apps show it). Anything else is malformed input, not a guess, and is not counted as an attempt.
 */
export function parseTotpCode(input: string): CodeShape {
  const trimmed = input.trim();
  if (trimmed === "") return { ok: false, message: "Enter the 6-digit code from your authenticator app." };
  const compact = /^\d{3} \d{3}$/.test(trimmed) ? trimmed.replace(" ", "") : trimmed;
  if (!/^[0-9]{6}$/.test(compact)) return { ok: false, message: "An authentication code is 6 digits (0–9), like 123456." };
  return { ok: true, code: compact };
}

/**
 * Checks a code against the current time step ± `driftSteps`. Returns the matched step, which the caller must record
 * and compare to the last accepted one: a step is accepted once (RFC 6238 §5.2).
 */
export async function matchTotp(input: {
  secret: string;
  code: string;
  nowMs: number;
  stepSeconds: number;
  driftSteps: number;
  afterStep: number | null;
}): Promise<number | null> {
  const result = await (
    await library()
  ).verify({
    secret: input.secret,
    token: input.code,
    epoch: Math.floor(input.nowMs / 1000),
    period: input.stepSeconds,
    epochTolerance: input.driftSteps * input.stepSeconds,
    ...(input.afterStep !== null ? { afterTimeStep: input.afterStep } : {}),
  });
  return result.valid && "timeStep" in result ? result.timeStep : null;
}
