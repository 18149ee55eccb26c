import { createRequire } from "node:module";
import type * as LanguageCommon from "@zxcvbn-ts/language-common";

/** Loaded on the first password check, not at start: the list is ~15 MB of RSS (issue 10). */
const load = (): typeof LanguageCommon => createRequire(import.meta.url)("@zxcvbn-ts/language-common");

let common: Set<string> | undefined;

/**
 * True when the password is among the `count` most common ones. The list is zxcvbn-ts's ranked list of passwords
 * seen in breaches (maintained with the package); compared case-insensitively, so "Password1" counts as "password1".
 */
export function isCommonPassword(password: string, count: number): boolean {
  if (common === undefined || common.size !== Math.min(count, load().dictionary["passwords-common"].length)) {
    const { dictionary } = load();
    common = new Set(dictionary["passwords-common"].slice(0, count).map((p) => p.toLowerCase()));
  }
  return common.has(password.toLowerCase());
}
