import { describe, expect, it } from "vitest";
import { newToken } from "../src/auth/tokens.js";
import { redactUrl } from "../src/http/request-info.js";

describe("request logs", () => {
  it("carry no live token: link tokens in paths and the OIDC code and state are redacted", () => {
    const token = newToken();
    for (const path of ["/login/email/", "/invite/", "/setup/", "/support/confirm/", "/support/cancel/"]) {
      expect(redactUrl(`${path}${token}`)).toBe(`${path}[redacted]`);
    }
    expect(redactUrl(`/sso/callback?code=abc.def&state=${token}&iss=https%3A%2F%2Fidp`)).toBe(
      "/sso/callback?code=[redacted]&state=[redacted]&iss=https%3A%2F%2Fidp",
    );
    expect(redactUrl("/settings/two-factor/recovery-codes?notice=codes_done")).toBe(
      "/settings/two-factor/recovery-codes?notice=codes_done",
    );
    expect(redactUrl("/settings/team/members/0123456789abcdef0123456789abcdef/remove")).toBe(
      "/settings/team/members/0123456789abcdef0123456789abcdef/remove",
    );
  });

  it("carry no operator API token, even one sent by mistake in a query string (where it is ignored)", () => {
    const token = `lk_${newToken()}`;
    expect(redactUrl(`/api/v1/admin/accounts?access_token=${token}`)).toBe("/api/v1/admin/accounts?access_token=[redacted]");
    expect(redactUrl(`/api/v1/admin/accounts?limit=2&token=${token}&cursor=abc`)).toBe(
      "/api/v1/admin/accounts?limit=2&token=[redacted]&cursor=abc",
    );
  });
});
