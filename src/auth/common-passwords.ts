import { dictionary } from "@zxcvbn-ts/language-common";

let common: Set<string> | undefined;

/**
 * True when the password is among the `count` most common ones. The list is zxcvbn-ts's ranked list of passwords
 * seen in breaches (maintained with the package); compared case-insensitively, so "Password1" counts as "password1".
 */
export function isCommonPassword(password: string, count: number): boolean {
  if (common === undefined || common.size !== Math.min(count, dictionary["passwords-common"].length)) {
    common = new Set(dictionary["passwords-common"].slice(0, count).map((p) => p.toLowerCase()));
  }
  return common.has(password.toLowerCase());
}
