import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultLimits } from "../src/config.js";
import { checkEmail, normalizeEmail } from "../src/auth/emails.js";
import { connectSso } from "../src/team/sso.js";
import { ssoRedirectUri } from "../src/auth/sso-sign-in.js";
import { newId } from "../src/auth/tokens.js";
import { Browser, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";
import { startTestIdp, type TestIdp } from "./helpers/oidc-provider.js";

/**
 * One mailbox, one spelling (review issue 7): `v@corp.test.` passed the SSO domain check (which dropped the dot) and
 * became a second user beside `v@corp.test`. The email normaliser and the domain check now agree on the domain.
 */
describe("checkEmail and normalizeEmail: one spelling of a domain", () => {
  it.each(["v@corp.test.", "v@.corp.test", "v@corp..test", "v@corp.test.."])("refuses %s (an empty label in the domain)", (email) => {
    expect(checkEmail(email, defaultLimits)).toMatchObject({
      ok: false,
      reason: "email_invalid",
      message: "The part after @ must be a domain like example.com, with no dot at its start or end and no two dots in a row.",
    });
  });

  it.each([
    ["V@Corp.Test", "v@corp.test"],
    ["v@corp\u3002test", "v@corp.test"],
    ["v@\uFF43orp.test", "v@corp.test"],
    ["v@xn--bcher-kva.example", "v@b\u00FCcher.example"],
    ["v@B\u00FCcher.Example", "v@b\u00FCcher.example"],
  ])("writes %s as %s (the domain as a hostname reads it)", (email, stored) => {
    expect(normalizeEmail(email)).toBe(stored);
    expect(checkEmail(email, defaultLimits)).toEqual({ ok: true, value: stored });
  });
});

describeEachDialect("email domains", (dialect) => {
  let t: TestApp;
  let idp: TestIdp;
  let admin: Awaited<ReturnType<typeof seedMember>>;
  const domain = `corp-${newId().slice(0, 6)}.test`;

  beforeAll(async () => {
    t = await startTestApp(dialect);
    idp = await startTestIdp({ redirectUri: ssoRedirectUri(t.ctx) });
    admin = await seedMember(t, { role: "admin", email: `admin@${domain}`, accountName: "Corp SSO" });
    expect(
      (
        await connectSso(t.ctx, {
          accountId: admin.accountId,
          issuer: idp.issuer,
          clientId: idp.clientId,
          clientSecret: idp.clientSecret,
          domains: [domain],
        })
      ).ok,
    ).toBe(true);
  });
  afterAll(async () => {
    await idp?.close();
    await t?.close();
  });

  async function ssoCallback(browser: Browser, email: string): Promise<Awaited<ReturnType<Browser["get"]>>> {
    const started = await browser.request("POST", "/api/v1/login/sso", { json: { domain } });
    expect(started.statusCode, started.body).toBe(200);
    idp.nextUser = { sub: `sub-${newId().slice(0, 10)}`, email, email_verified: true, name: "V" };
    return browser.get(await idp.signIn(started.json<{ authorizationUrl: string }>().authorizationUrl));
  }

  async function usersLike(local: string): Promise<string[]> {
    const rows = await t.ctx.db.selectFrom("users").select("email").where("email", "like", `${local}@%`).execute();
    return rows.map((r) => r.email);
  }

  it("an id token with the email v@corp.test. is refused with a clear page and creates no user", async () => {
    const local = `v-${newId().slice(0, 8)}`;
    const browser = new Browser(t.app);
    const refused = await ssoCallback(browser, `${local}@${domain}.`);
    expect(refused.statusCode).toBe(401);
    expect(refused.headers["content-type"]).toContain("text/html");
    expect(refused.body).toContain("Your identity provider sent an email address that is not valid");
    expect((await browser.get("/api/v1/session")).statusCode).toBe(401);
    expect(await usersLike(local)).toEqual([]);
  });

  it("the same mailbox spelled with an ideographic full stop signs in as the one existing user", async () => {
    const local = `w-${newId().slice(0, 8)}`;
    expect((await ssoCallback(new Browser(t.app), `${local}@${domain}`)).statusCode).toBe(303);
    const again = await ssoCallback(new Browser(t.app), `${local}@${domain.replace(".", "\u3002")}`);
    expect(again.statusCode, again.body.slice(0, 300)).toBe(303);
    expect(await usersLike(local)).toEqual([`${local}@${domain}`]);
  });

  it("an admin cannot invite an address with a trailing dot: 422 email_invalid", async () => {
    const browser = await signedInBrowser(t, admin);
    const response = await browser.request("POST", "/api/v1/team/invitations", {
      json: { email: `x-${newId().slice(0, 6)}@example.com.`, role: "member" },
    });
    expect(response.statusCode).toBe(422);
    expect(response.json()).toMatchObject({ error: "email_invalid", message: expect.stringContaining("no dot at its start or end") });
  });
});
