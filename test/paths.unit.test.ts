import { describe, expect, it } from "vitest";
import { pathTo, routes, UnsafePathSegmentError, urlTo } from "../src/paths.js";

describe("the route table", () => {
  it("names every path once", () => {
    const paths = Object.values(routes);
    expect(new Set(paths).size).toBe(paths.length);
  });

  it("builds a path with each parameter as exactly one percent-encoded segment", () => {
    expect(pathTo("supportConfirm", { token: "../../settings/team/members/abc/remove" })).toBe(
      "/support/confirm/..%2F..%2Fsettings%2Fteam%2Fmembers%2Fabc%2Fremove",
    );
    expect(pathTo("teamMemberRemove", { userId: "a?b#c%d\\e" })).toBe("/settings/team/members/a%3Fb%23c%25d%5Ce/remove");
    expect(pathTo("invitation", { token: "ü\u202e" })).toBe("/invite/%C3%BC%E2%80%AE");
    // Resolved the way a browser resolves a form's action, the path stays on its own route.
    const resolved = new URL(pathTo("supportConfirm", { token: "..%2F..%2Fsettings" }), "http://localhost:3000/support/confirm/x").pathname;
    expect(resolved.startsWith("/support/confirm/")).toBe(true);
  });

  it("builds every route of the table: each parameter in its place, the text around it kept, the second use the same as the first", () => {
    for (const [name, route] of Object.entries(routes) as [keyof typeof routes, string][]) {
      const keys = [...route.matchAll(/:([A-Za-z]+)/g)].map((m) => m[1] as string);
      const params = Object.fromEntries(keys.map((key, i) => [key, `v${i} ${key}`]));
      const expected = route.replace(/:([A-Za-z]+)/g, (_m, key: string) => encodeURIComponent(params[key] as string));
      const build = pathTo as (n: string, p: Record<string, string>) => string;
      expect(build(name, params), name).toBe(expected);
      expect(build(name, params), name).toBe(expected);
      for (const key of keys)
        expect(() => build(name, { ...params, [key]: undefined as unknown as string }), `${name} without ${key}`).toThrow(
          UnsafePathSegmentError,
        );
    }
  });

  it("refuses empty and dot segments, which browsers would resolve away even when encoded", () => {
    for (const token of ["", ".", "..", "%2e", "%2E%2e", ".%2e", "%2e."]) {
      expect(() => pathTo("supportConfirm", { token }), token).toThrow(UnsafePathSegmentError);
    }
    expect(pathTo("supportConfirm", { token: "..." })).toBe("/support/confirm/...");
  });

  it("adds a query, leaving out undefined values", () => {
    expect(pathTo("team", {}, { notice: "invited" })).toBe("/settings/team?notice=invited");
    expect(pathTo("login", {}, { notice: undefined })).toBe("/login");
    expect(pathTo("login", {}, { email: "a&b=c@x.test" })).toBe("/login?email=a%26b%3Dc%40x.test");
  });

  it("puts only the public origin in front of an absolute link", () => {
    expect(urlTo(new URL("https://auth.example.com"), "loginEmailLink", { token: "abc" })).toBe("https://auth.example.com/login/email/abc");
    expect(urlTo(new URL("http://localhost:3000/ignored/path"), "home")).toBe("http://localhost:3000/");
  });
});
