import type { Limits } from "../config.js";
import { fail, ok, type Result } from "../errors.js";

/**
 * The one form of an email address Latchkey stores and compares: trimmed, NFC, lower-cased. Addresses are unique
 * case-insensitively (RFC 5321 allows case-sensitive local parts, but no real provider uses them, and treating
 * "Ann@x" and "ann@x" as two people invites account confusion).
 */
export function normalizeEmail(email: string): string {
  return email.trim().normalize("NFC").toLowerCase();
}

/** A deliberately plain check (one @, a dot in the domain, no spaces or control characters): the invitation email proves the rest. */
export function checkEmail(email: string, limits: Limits): Result<string, "email_invalid"> {
  const normalized = normalizeEmail(email);
  if (normalized.length === 0) return fail("email_invalid", "Enter an email address.");
  if (normalized.length > limits.emailMaxLength) return fail("email_invalid", `An email address has at most ${limits.emailMaxLength} characters.`);
  if (!/^[^\s@\p{Cc}]+@[^\s@\p{Cc}]+\.[^\s@\p{Cc}]+$/u.test(normalized)) return fail("email_invalid", "Enter an email address like name@example.com.");
  // Characters that address headers treat as structure (lists, display names, comments, routes): an address
  // containing them could deliver somewhere other than the address we store and show.
  if (/[<>(),;:"[\]\\]/.test(normalized)) return fail("email_invalid", "An email address cannot contain < > ( ) , ; : \" [ ] or \\.");
  return ok(normalized);
}

/** Display names and account names: trimmed, 1 to `nameMaxLength` code points, no control characters. */
export function checkName(name: string, limits: Limits, what = "name"): Result<string, "name_invalid"> {
  const trimmed = name.normalize("NFC").trim();
  const length = [...trimmed].length;
  const article = /^[aeiou]/i.test(what) ? "an" : "a";
  if (length === 0) return fail("name_invalid", `Enter ${article} ${what}.`);
  if (length > limits.nameMaxLength) return fail("name_invalid", `${article === "an" ? "An" : "A"} ${what} has at most ${limits.nameMaxLength} characters (this one has ${length}).`);
  if (/\p{Cc}/u.test(trimmed)) return fail("name_invalid", `A ${what} cannot contain control characters.`);
  return ok(trimmed);
}
