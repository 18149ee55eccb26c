import { describe, expect, it } from "vitest";
import { listenFailure, reasonOf, withoutPassword } from "../src/startup-checks.js";

describe("start-up checks: what a failure line shows", () => {
  it.each([
    ["postgres://latchkey:s3cret@db.internal:5432/latchkey", "postgres://latchkey:***@db.internal:5432/latchkey"],
    ["postgres://latchkey@db.internal/latchkey", "postgres://latchkey@db.internal/latchkey"],
    ["postgresql://db/latchkey?user=me&password=s3cret&sslmode=require", "postgresql://db/latchkey?user=me&password=***&sslmode=require"],
    ["redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"],
    ["rediss://default:s3cret@cache:6380", "rediss://default:***@cache:6380"],
    ["postgres://user:s3cr/et@[bad", "postgres://…"],
  ])("%s is shown as %s", (url, shown) => {
    expect(withoutPassword(url)).toBe(shown);
    expect(withoutPassword(url)).not.toContain("s3cr");
  });

  it("a refused connection to a name with several addresses (an AggregateError without a message) gives its first reason", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED ::1:5432"), { code: "ECONNREFUSED" });
    expect(reasonOf(new AggregateError([refused, new Error("connect ECONNREFUSED 127.0.0.1:5432")]))).toBe("connect ECONNREFUSED ::1:5432");
    expect(reasonOf(Object.assign(new Error(""), { code: "ETIMEDOUT" }))).toBe("ETIMEDOUT");
    expect(reasonOf(new Error("two\nlines"))).toBe("two lines");
  });

  it.each([
    ["EADDRINUSE", "the port is already in use by another process (set PORT, or stop the other process)"],
    ["EACCES", "permission denied (ports below 1024 need privileges: set PORT to 1024 or above, or grant CAP_NET_BIND_SERVICE)"],
    ["EADDRNOTAVAIL", "the address 0.0.0.0 is not one of this machine's (set HOST)"],
    ["ENOTFOUND", "the host name 0.0.0.0 does not resolve (set HOST)"],
  ])("a listen error %s says what to change", (code, says) => {
    const error = Object.assign(new Error(`listen ${code}`), { code });
    expect(listenFailure("0.0.0.0", 80, error)).toBe(`cannot listen on 0.0.0.0:80: ${says}`);
  });

  it("an IPv6 listen address is bracketed", () => {
    expect(listenFailure("::", 3000, Object.assign(new Error("x"), { code: "EADDRINUSE" }))).toMatch(/^cannot listen on \[::\]:3000: /);
  });
});
