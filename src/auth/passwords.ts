import type * as Argon2 from "@node-rs/argon2";
import type { Limits } from "../config.js";
import { fail, ok, type Result } from "../errors.js";
import { isCommonPassword } from "./common-passwords.js";

/** argon2id with OWASP's minimum (m=19 MiB, t=2, p=1); @node-rs/argon2 runs it on libuv's pool, off the event loop. */
// `algorithm: 2` is Argon2id (the package exports it as a const enum, which isolated modules cannot inline).
export const ARGON2_OPTIONS = { algorithm: 2, memoryCost: 19456, timeCost: 2, parallelism: 1 } as const;

/** The native argon2 module, loaded at the first password hashed or checked rather than at start (memory, issue 10). */
let argon2: Promise<typeof Argon2> | undefined;
const library = (): Promise<typeof Argon2> => (argon2 ??= import("@node-rs/argon2"));

export async function hashPassword(password: string): Promise<string> {
  return (await library()).hash(password.normalize("NFC"), ARGON2_OPTIONS);
}

/** Constant-time inside argon2; false for a malformed hash instead of throwing. */
export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  // Loaded outside the try: a module that cannot load is an error, never a wrong password.
  const { verify } = await library();
  try {
    return await verify(passwordHash, password.normalize("NFC"));
  } catch {
    return false;
  }
}

/** Password checks of sign-in running or waiting in this process (libuv's pool is per process). */
let checksInFlight = 0;

/**
 * Runs `check` unless `max` sign-in password checks are already running or waiting here: then returns null at once
 * and the caller refuses the request (503), so a flood of sign-ins is never queued without bound behind argon2.
 */
export async function withPasswordCheckSlot<T>(max: number, check: () => Promise<T>): Promise<T | null> {
  if (checksInFlight >= max) return null;
  checksInFlight += 1;
  try {
    return await check();
  } finally {
    checksInFlight -= 1;
  }
}

let dummyHash: Promise<string> | undefined;

/**
 * Spends the same time as a real check, for an unknown email or a user without a password, so that the answer's
 * timing does not tell whether the email exists.
 */
export async function verifyAgainstDummy(password: string): Promise<false> {
  dummyHash ??= hashPassword("latchkey-dummy-password-for-timing");
  await verifyPassword(await dummyHash, password);
  return false;
}

export type PasswordProblem = "password_too_short" | "password_too_long" | "password_too_common";

/**
 * NIST 800-63B rules: length in code points (any Unicode, normalised to NFC), no composition rules, no truncation,
 * refuse common passwords. Returns why a password is refused, in words a person can act on.
 */
export function checkNewPassword(password: string, limits: Limits): Result<string, PasswordProblem> {
  const normalized = password.normalize("NFC");
  const length = [...normalized].length;
  if (length < limits.passwordMinLength) {
    return fail("password_too_short", `Use at least ${limits.passwordMinLength} characters (this one has ${length}).`);
  }
  if (length > limits.passwordMaxLength) {
    return fail("password_too_long", `Use at most ${limits.passwordMaxLength} characters (this one has ${length}).`);
  }
  if (isCommonPassword(normalized, limits.commonPasswordCount)) {
    return fail("password_too_common", "This password is one of the most common passwords, which attackers try first. Choose another.");
  }
  return ok(normalized);
}
