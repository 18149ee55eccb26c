import { domainToASCII, domainToUnicode } from "node:url";
import type { Limits } from "../config.js";
import { fail, ok, type Result } from "../errors.js";

/**
 * The one form of an email address Latchkey stores and compares: trimmed, NFC, lower-cased, and the domain as a
 * hostname reads it (UTS #46: "corp\u3002test", "\uFF43orp.test" and "CORP.test" are all corp.test; an xn-- label is
 * written in Unicode). Without the last step, spellings the SSO domain check treats as one domain were two users.
 * Addresses are unique case-insensitively (RFC 5321 allows case-sensitive local parts, but no real provider uses them,
 * and treating "Ann@x" and "ann@x" as two people invites account confusion).
 */
export function normalizeEmail(email: string): string {
  const normalized = email.trim().normalize("NFC").toLowerCase();
  const at = normalized.lastIndexOf("@");
  if (at < 0) return normalized;
  const ascii = domainToASCII(normalized.slice(at + 1));
  // Not a hostname at all: left as it is, for checkEmail to refuse.
  return ascii === "" ? normalized : `${normalized.slice(0, at + 1)}${domainToUnicode(ascii)}`;
}

/** A deliberately plain check (one @, a dot in the domain, no spaces or control characters): the invitation email proves the rest. */
export function checkEmail(email: string, limits: Limits): Result<string, "email_invalid"> {
  const normalized = normalizeEmail(email);
  if (normalized.length === 0) return fail("email_invalid", "Enter an email address.");
  if (normalized.length > limits.emailMaxLength)
    return fail("email_invalid", `An email address has at most ${limits.emailMaxLength} characters.`);
  if (!/^[^\s@\p{Cc}]+@[^\s@\p{Cc}]+\.[^\s@\p{Cc}]+$/u.test(normalized))
    return fail("email_invalid", "Enter an email address like name@example.com.");
  // Characters that address headers treat as structure (lists, display names, comments, routes): an address
  // containing them could deliver somewhere other than the address we store and show.
  if (/[<>(),;:"[\]\\]/.test(normalized)) return fail("email_invalid", 'An email address cannot contain < > ( ) , ; : " [ ] or \\.');
  const domain = normalized.slice(normalized.lastIndexOf("@") + 1);
  // A trailing dot names the same host ("corp.test." is corp.test) but would be a second spelling of the address.
  if (domain.split(".").includes("")) {
    return fail(
      "email_invalid",
      "The part after @ must be a domain like example.com, with no dot at its start or end and no two dots in a row.",
    );
  }
  if (domainToASCII(domain) === "") return fail("email_invalid", "Enter an email address like name@example.com.");
  return ok(normalized);
}

/**
 * Characters a name may not hold: controls (Cc), format characters (Cf: the bidi embeddings, overrides, isolates and
 * marks, zero-width space and joiners, word joiner, BOM, soft hyphen, tags), line and paragraph separators, and the
 * other default-ignorable code points (Hangul fillers, ...). They draw nothing, or reorder what follows, so a name
 * holding them can pass for another name ("Ad\u200Bmin") or flip the text around it in lists and the audit log.
 */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]/u;
const JOINERS = new Set(["\u200C", "\u200D"]);
const VARIATION_SELECTOR = /^[\uFE0E\uFE0F]$/u;
/** Scripts whose spelling needs the zero-width (non-)joiner: Persian, Urdu, the Indic scripts, ... */
const JOINING_SCRIPT_LETTER =
  /^[\p{Script_Extensions=Arabic}\p{Script_Extensions=Syriac}\p{Script_Extensions=Nko}\p{Script_Extensions=Mongolian}\p{Script_Extensions=Devanagari}\p{Script_Extensions=Bengali}\p{Script_Extensions=Gurmukhi}\p{Script_Extensions=Gujarati}\p{Script_Extensions=Oriya}\p{Script_Extensions=Tamil}\p{Script_Extensions=Telugu}\p{Script_Extensions=Kannada}\p{Script_Extensions=Malayalam}\p{Script_Extensions=Sinhala}]$/u;
const PICTOGRAPH = /^\p{Extended_Pictographic}$/u;
/** What may come before the joiner of an emoji sequence: the emoji, its skin tone, its variation selector. */
const EMOJI_PART = /^[\p{Extended_Pictographic}\p{Emoji_Modifier}\uFE0F]$/u;

/**
 * Whether the invisible character at `index` is one a real name needs: a joiner after a letter of a script that
 * uses it (it changes how the letters join, so it shows), a joiner inside an emoji sequence, or an emoji's
 * variation selector. Anywhere else, e.g. between Latin letters, it only hides.
 */
function isNeededJoiner(chars: string[], index: number): boolean {
  const char = chars[index] as string;
  const before = chars[index - 1] ?? "";
  const after = chars[index + 1] ?? "";
  if (VARIATION_SELECTOR.test(char)) return PICTOGRAPH.test(before);
  if (!JOINERS.has(char)) return false;
  if (JOINING_SCRIPT_LETTER.test(before)) return true;
  return char === "\u200D" && EMOJI_PART.test(before) && PICTOGRAPH.test(after);
}

function withoutInvisible(name: string): string {
  const chars = [...name];
  return chars.filter((char, index) => !INVISIBLE.test(char) || isNeededJoiner(chars, index)).join("");
}

/** People's display names: trimmed, 1 to `nameMaxLength` code points, nothing invisible or direction-changing. */
export function checkName(name: string, limits: Limits): Result<string, "name_invalid"> {
  return checkNameText(name, limits, "name_invalid", { article: "a", what: "name" });
}

/**
 * Account names, by the same rules as people's names. A code of their own: a form that asks for both (first-run
 * setup) puts the message at the right field by the code.
 */
export function checkAccountName(name: string, limits: Limits): Result<string, "account_name_invalid"> {
  return checkNameText(name, limits, "account_name_invalid", { article: "an", what: "account name" });
}

function checkNameText<C extends "name_invalid" | "account_name_invalid">(
  name: string,
  limits: Limits,
  code: C,
  words: { article: "a" | "an"; what: string },
): Result<string, C> {
  const trimmed = name.normalize("NFC").trim();
  const length = [...trimmed].length;
  const { article, what } = words;
  const capitalArticle = article === "an" ? "An" : "A";
  if (length === 0) return fail(code, `Enter ${article} ${what}.`);
  if (length > limits.nameMaxLength)
    return fail(code, `${capitalArticle} ${what} has at most ${limits.nameMaxLength} characters (this one has ${length}).`);
  if (/\p{Cc}/u.test(trimmed)) return fail(code, `${capitalArticle} ${what} cannot contain control characters.`);
  if (withoutInvisible(trimmed) !== trimmed)
    return fail(code, `${capitalArticle} ${what} cannot contain invisible characters or text-direction controls.`);
  return ok(trimmed);
}

/**
 * A name an identity provider sent, with what `checkName` refuses taken out: the person did not type it and cannot
 * fix it, so they are not refused for it. Pass the result through `checkName`.
 */
export function cleanProviderName(name: string): string {
  return withoutInvisible(name.normalize("NFC"));
}
