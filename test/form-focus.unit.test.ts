import { describe, expect, it } from "vitest";
import { focusedField } from "../src/http/views/layout.js";
import { invitationPage, setupPage } from "../src/http/views/invitations.js";

/** The ids of the inputs that carry `autofocus` in a page's markup, in document order. */
function autofocused(markup: string): string[] {
  return [...markup.matchAll(/<input id="([^"]+)"[^>]*\sautofocus[\s>]/g)].map((m) => m[1]!);
}

const LENGTHS = { minLength: 12, maxLength: 128 };

describe("which field a form opens with the focus on", () => {
  it("is the first field with an error, in the form's order, else the first field", () => {
    expect(focusedField(["a", "b", "c"], {})).toBe("a");
    expect(focusedField(["a", "b", "c"], { c: "wrong" })).toBe("c");
    expect(focusedField(["a", "b", "c"], { c: "wrong", b: "wrong too" })).toBe("b");
    // A key present with no message is no error.
    expect(focusedField(["a", "b"], { a: undefined, b: "wrong" })).toBe("b");
  });

  it("first-run setup: exactly one field autofocused — the account name, or the first field with a mistake", () => {
    const base = { productName: "Latchkey", csrf: "t", token: "x".repeat(43), ...LENGTHS };
    expect(autofocused(setupPage(base).value)).toEqual(["f-accountName"]);
    expect(autofocused(setupPage({ ...base, errors: { email: "Enter an email address." } }).value)).toEqual(["f-email"]);
    expect(autofocused(setupPage({ ...base, errors: { password: "Too short.", name: "Enter your name." } }).value)).toEqual(["f-name"]);
  });

  it("joining by invitation: the name, or the first of name and password with a mistake", () => {
    const base = {
      productName: "Latchkey",
      accountName: "Acme",
      email: "ada@example.com",
      existingUserName: null,
      csrf: "t",
      token: "x".repeat(43),
      ...LENGTHS,
    };
    expect(autofocused(invitationPage(base).value)).toEqual(["f-name"]);
    expect(autofocused(invitationPage({ ...base, errors: { password: "Too common." } }).value)).toEqual(["f-password"]);
    expect(autofocused(invitationPage({ ...base, errors: { password: "Too common.", name: "Enter your name." } }).value)).toEqual([
      "f-name",
    ]);
  });
});
