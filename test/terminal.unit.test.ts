import { describe, expect, it } from "vitest";
import { escapeForTerminal, quoteForTerminal } from "../src/terminal.js";

/** Security review F6: what the CLI prints of stored text can neither forge lines nor drive the terminal. */
describe("quoteForTerminal", () => {
  it("quotes, and shows line breaks, tabs, quotes and backslashes as escapes", () => {
    expect(quoteForTerminal("plain text")).toBe('"plain text"');
    expect(quoteForTerminal("")).toBe('""');
    expect(quoteForTerminal("a\nStatus: approved\r\n\tb")).toBe(String.raw`"a\nStatus: approved\r\n\tb"`);
    expect(quoteForTerminal('say "hi" \\ bye')).toBe(String.raw`"say \"hi\" \\ bye"`);
  });

  it("shows C0, DEL, C1 and ANSI escape sequences as visible escapes", () => {
    expect(quoteForTerminal("\u0000\u0007\u001b[2J\u001b]0;title\u0007")).toBe(String.raw`"\x00\x07\x1b[2J\x1b]0;title\x07"`);
    expect(quoteForTerminal("\u007f\u0080\u0085\u009b31m")).toBe(String.raw`"\x7f\x80\x85\x9b31m"`);
  });

  it("shows bidi controls, zero-width and other invisible format characters, separators and non-characters as escapes", () => {
    expect(quoteForTerminal("a\u202ab\u202ec\u2066d\u2069e")).toBe(String.raw`"a\u202ab\u202ec\u2066d\u2069e"`);
    expect(quoteForTerminal("a\u200bb\u200c\u200d\u200e\u200f\u2060\ufeff\u00ad")).toBe(
      String.raw`"a\u200bb\u200c\u200d\u200e\u200f\u2060\ufeff\xad"`,
    );
    expect(quoteForTerminal("a\u2028b\u2029c")).toBe(String.raw`"a\u2028b\u2029c"`);
    expect(quoteForTerminal("tag\u{e0041}\u{e007f} private\ue000 lone\ud800")).toBe(
      String.raw`"tag\u{e0041}\u{e007f} private\ue000 lone\ud800"`,
    );
  });

  it("leaves ordinary text of any script alone", () => {
    expect(quoteForTerminal("Zoë Ångström — 東京 🙂 مرحبا")).toBe('"Zoë Ångström — 東京 🙂 مرحبا"');
  });

  it("always gives one line with nothing a terminal acts on or hides", () => {
    let all = "";
    for (let cp = 0; cp < 0x3000; cp++) if (cp < 0xd800 || cp > 0xdfff) all += String.fromCodePoint(cp);
    all += "\u{e0001}\u{e0020}\u{f0000}\u{10ffff}\ufff9\ufffb";
    const quoted = quoteForTerminal(all);
    expect(quoted).not.toMatch(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Co}\p{Cs}]/u);
    expect(quoted.split("\n")).toHaveLength(1);
  });
});

describe("escapeForTerminal", () => {
  it("escapes the same characters without quoting, for messages and validated values", () => {
    expect(escapeForTerminal("https://idp.example.com")).toBe("https://idp.example.com");
    expect(escapeForTerminal('no request "x\u001b[2J"\n')).toBe(String.raw`no request "x\x1b[2J"\n`);
  });
});
