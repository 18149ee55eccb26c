import { describe, expect, it } from "vitest";
import { defaultLimits } from "../src/config.js";
import { safeReturnTo } from "../src/return-to.js";
import { REFUSED_RETURN_TO } from "./helpers/return-to.js";

const PUBLIC = new URL("https://auth.example.com");
const ALLOWED = [PUBLIC.origin, "https://app.example.com", "http://localhost:4000"] as const;

describe("safeReturnTo", () => {
  it.each([
    ["a path on the public origin", "/settings/team", "https://auth.example.com/settings/team"],
    ["the root", "/", "https://auth.example.com/"],
    ["a path with a query and a fragment", "/settings/team?tab=1#invite", "https://auth.example.com/settings/team?tab=1#invite"],
    ["the public origin written out", "https://auth.example.com/settings", "https://auth.example.com/settings"],
    ["an origin from the list", "https://app.example.com/dashboard?x=1", "https://app.example.com/dashboard?x=1"],
    ["an origin from the list, mixed case, with its default port", "HTTPS://App.Example.COM:443/Path", "https://app.example.com/Path"],
    ["an http origin with a port from the list", "http://localhost:4000/x", "http://localhost:4000/x"],
    ["encoded slashes in a path stay in the path", "/%2F%2Fevil.example", "https://auth.example.com/%2F%2Fevil.example"],
    ["dot segments stay on the public origin", "/..//evil.example", "https://auth.example.com//evil.example"],
  ])("accepts %s", (_what, raw, expected) => {
    expect(safeReturnTo(raw, ALLOWED, PUBLIC)).toBe(expected);
  });

  it("accepts a value of exactly the longest length", () => {
    const raw = `/${"a".repeat(defaultLimits.returnToMaxLength - 1)}`;
    expect(safeReturnTo(raw, ALLOWED, PUBLIC)).toBe(`https://auth.example.com${raw}`);
  });

  it.each(REFUSED_RETURN_TO)("refuses %s", (_what, raw) => {
    expect(safeReturnTo(raw, ALLOWED, PUBLIC)).toBeNull();
  });

  it("compares with the allowed list by origin, however its entries are written", () => {
    expect(safeReturnTo("https://app.example.com/x", ["https://APP.example.com:443/"], PUBLIC)).toBe("https://app.example.com/x");
    expect(safeReturnTo("https://app.example.com/x", ["not a url", "https://other.example"], PUBLIC)).toBeNull();
  });

  it("refuses a path when the public origin is not in the allowed list (fails closed)", () => {
    expect(safeReturnTo("/settings", ["https://app.example.com"], PUBLIC)).toBeNull();
  });

  it("every accepted result is an absolute http(s) URL on an allowed origin", () => {
    for (const raw of ["/a", "https://app.example.com/b", "/..//evil.example", "/%5C%5Cevil.example"]) {
      const result = safeReturnTo(raw, ALLOWED, PUBLIC);
      expect(result).not.toBeNull();
      expect(ALLOWED).toContain(new URL(result!).origin);
    }
  });
});
