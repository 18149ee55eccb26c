/**
 * Characters that must never reach an operator's terminal as they are: control characters (C0, DEL, C1 — line
 * breaks, ANSI escape sequences), format characters (bidi overrides and isolates, zero-width characters, tags),
 * line and paragraph separators, surrogates, private-use and unassigned code points. Printed raw they forge lines
 * ("Status: approved"), clear or retitle the screen, or hide and reorder text. The backslash is escaped too, so an
 * escape seen in the output always stands for the character, never for text that merely looks like one.
 */
const UNSAFE = /[\\\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Co}\p{Cn}]/gu;

const NAMED: Readonly<Record<string, string>> = { "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t" };

function escapeCharacter(character: string): string {
  const named = NAMED[character];
  if (named !== undefined) return named;
  const code = character.codePointAt(0) ?? 0;
  const hex = code.toString(16);
  if (code <= 0xff) return `\\x${hex.padStart(2, "0")}`;
  if (code <= 0xffff) return `\\u${hex.padStart(4, "0")}`;
  return `\\u{${hex}}`;
}

/**
 * The text with every unsafe character shown as a visible escape (`\n`, `\x1b`, `\u202e`): one line, nothing a
 * terminal acts on or hides. For messages and values that are already checked; free text others wrote is printed
 * with `quoteForTerminal`.
 */
export function escapeForTerminal(text: string): string {
  return text.replace(UNSAFE, escapeCharacter);
}

/**
 * Text someone outside the operator wrote (a support message, a User-Agent, an email address, a person's or an
 * account's name), as the CLI prints it: escaped and in double quotes, so where it starts and ends is never in doubt.
 */
export function quoteForTerminal(text: string): string {
  return `"${escapeForTerminal(text).replace(/"/g, '\\"')}"`;
}
