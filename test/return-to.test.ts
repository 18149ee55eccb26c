import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDialect } from "./helpers/dialects.js";
import { addMembership, Browser, csrfFrom, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { enableAuthApp, STEP_SECONDS, totpCode } from "./helpers/auth-app.js";
import { startTestIdp, type TestIdp } from "./helpers/oidc-provider.js";
import { REFUSED_RETURN_TO } from "./helpers/return-to.js";
import { connectSso } from "../src/team/sso.js";
import { ssoRedirectUri } from "../src/auth/sso-sign-in.js";
import { newId } from "../src/auth/tokens.js";

const PUBLIC = "https://auth.example.com";
const APP = "https://app.example.com";
/** Every origin a redirect may ever name in these tests: the public URL and LATCHKEY_RETURN_ORIGINS. */
const ALLOWED_ORIGINS = [PUBLIC, APP, "http://localhost:4000"];
const HOME = `${PUBLIC}/`;

type Member = Awaited<ReturnType<typeof seedMember>>;

function unescapeHtml(text: string): string {
  return text.replaceAll("&quot;", '"').replaceAll("&#39;", "'").replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&amp;", "&");
}

/** The hidden `return_to` field of a sign-in form, if the page has one. */
function hiddenReturnTo(body: string): string | undefined {
  const match = /name="return_to" value="([^"]*)"/.exec(body);
  return match?.[1] === undefined ? undefined : unescapeHtml(match[1]);
}

/** Where a page's `<meta http-equiv="refresh">` sends the browser, if it has one. */
function refreshTarget(body: string): string | undefined {
  const match = /<meta http-equiv="refresh" content="0;url=([^"]+)"/.exec(body);
  return match?.[1] === undefined ? undefined : unescapeHtml(match[1]);
}

function loginWith(path: "/login" | "/login/sso", returnTo: string): string {
  return `${path}?return_to=${encodeURIComponent(returnTo)}`;
}

describeEachDialect("return_to: back to the page asked for", (dialect) => {
  let t: TestApp;
  let idp: TestIdp;
  const domain = `sso-${newId().slice(0, 6)}.example`;

  beforeAll(async () => {
    t = await startTestApp(dialect, { env: { LATCHKEY_PUBLIC_URL: PUBLIC, LATCHKEY_RETURN_ORIGINS: `${APP}, http://localhost:4000` } });
    idp = await startTestIdp({ redirectUri: ssoRedirectUri(t.ctx) });
    const admin = await seedMember(t, { role: "admin", email: `admin@${domain}`, accountName: "SSO Corp" });
    const connected = await connectSso(t.ctx, {
      accountId: admin.accountId,
      issuer: idp.issuer,
      clientId: idp.clientId,
      clientSecret: idp.clientSecret,
      domains: [domain],
    });
    expect(connected.ok).toBe(true);
  });
  afterAll(async () => {
    await idp?.close();
    await t?.close();
  });

  /**
   * Follows the browser from `first` as a browser would: redirects within Latchkey's origin, and the continue page's
   * refresh. Stops at the first address on another origin (not ours to load) or at a page that sends nowhere.
   * Every address it was sent to must be on an allowed origin.
   */
  async function landing(browser: Browser, first: LightMyRequestResponse): Promise<{ url: string; last: LightMyRequestResponse }> {
    let response = first;
    let url: string | undefined;
    for (let hop = 0; hop < 10; hop++) {
      const isRedirect = response.statusCode >= 300 && response.statusCode < 400;
      const next = isRedirect ? (response.headers.location as string | undefined) : refreshTarget(response.body);
      if (next === undefined) {
        if (url === undefined) throw new Error(`no redirect from the first response (${response.statusCode})`);
        return { url, last: response };
      }
      const absolute = new URL(next, PUBLIC).href;
      expect(ALLOWED_ORIGINS, `sent to ${absolute}`).toContain(new URL(absolute).origin);
      url = absolute;
      if (new URL(absolute).origin !== PUBLIC) return { url, last: response };
      response = await browser.get(absolute);
    }
    throw new Error("too many redirects");
  }

  /** Opens `/login?return_to=…`, submits the form as drawn (with its hidden field), or with `formReturnTo` instead. */
  async function passwordStep(
    member: Member,
    returnTo: string | undefined,
    options: { formReturnTo?: string; browser?: Browser } = {},
  ): Promise<{ browser: Browser; response: LightMyRequestResponse }> {
    const browser = options.browser ?? new Browser(t.app);
    const page = await browser.get(returnTo === undefined ? "/login" : loginWith("/login", returnTo));
    expect(page.statusCode).toBe(200);
    const field = options.formReturnTo ?? hiddenReturnTo(page.body);
    const response = await browser.request("POST", "/login", {
      form: {
        _csrf: csrfFrom(page.body),
        email: member.email,
        password: member.password,
        ...(field !== undefined ? { return_to: field } : {}),
      },
    });
    expect(response.statusCode, response.body.slice(0, 300)).toBe(303);
    return { browser, response };
  }

  /** The email-link sign-in started at `/login?return_to=…`: the link opened in the same browser. */
  async function emailLinkSignIn(member: Member, returnTo: string | undefined, options: { formReturnTo?: string } = {}) {
    const { browser } = await passwordStep(member, returnTo, options);
    const linked = await browser.get(t.mail.lastLink(member.email));
    expect(linked.statusCode, linked.body.slice(0, 300)).toBe(303);
    return { browser, linked, ...(await landing(browser, linked)) };
  }

  async function memberWithApp(): Promise<Member & { secret: string; codes: string[] }> {
    const member = await seedMember(t);
    const { secret, codes } = await enableAuthApp(t, member);
    t.clock.advanceSeconds(STEP_SECONDS);
    return { ...member, secret, codes };
  }

  async function codeStep(member: Member, returnTo: string, kind: "code" | "recovery", code: string): Promise<string> {
    const { browser, response } = await passwordStep(member, returnTo);
    expect(response.headers.location).toBe("/login/code");
    const path = kind === "code" ? "/login/code" : "/login/recovery";
    const page = await browser.get(path);
    const submitted = await browser.request("POST", path, { form: { _csrf: csrfFrom(page.body), code } });
    expect(submitted.statusCode, submitted.body.slice(0, 300)).toBe(303);
    return (await landing(browser, submitted)).url;
  }

  async function ssoSignIn(returnTo: string): Promise<string> {
    const browser = new Browser(t.app);
    const page = await browser.get(loginWith("/login/sso", returnTo));
    expect(page.statusCode).toBe(200);
    const field = hiddenReturnTo(page.body);
    const handOver = await browser.request("POST", "/login/sso", {
      form: { _csrf: csrfFrom(page.body), domain, ...(field !== undefined ? { return_to: field } : {}) },
    });
    expect(handOver.statusCode, handOver.body.slice(0, 300)).toBe(200);
    const id = newId().slice(0, 10);
    idp.nextUser = { sub: `sub-${id}`, email: `person.${id}@${domain}`, email_verified: true, name: `Person ${id}` };
    const callback = await browser.get(await idp.signIn(refreshTarget(handOver.body)!));
    expect(callback.statusCode, callback.body.slice(0, 300)).toBe(303);
    return (await landing(browser, callback)).url;
  }

  it("the email link ends on a path of the public origin given as return_to", async () => {
    const { url, last } = await emailLinkSignIn(await seedMember(t), "/settings/profile");
    expect(url).toBe(`${PUBLIC}/settings/profile`);
    expect(last.statusCode).toBe(200);
  });

  it("the email link ends on an origin from LATCHKEY_RETURN_ORIGINS, with its path and query", async () => {
    const target = `${APP}/reports?year=2024#summary`;
    const { url, linked } = await emailLinkSignIn(await seedMember(t), target);
    expect(url).toBe(target);
    // The session is set on the link's answer, so the app finds the person signed in.
    expect(linked.headers["set-cookie"]).toBeDefined();
  });

  it("the auth-app code step ends on return_to", async () => {
    const member = await memberWithApp();
    expect(await codeStep(member, `${APP}/after-code`, "code", totpCode(t, member.secret))).toBe(`${APP}/after-code`);
  });

  it("the recovery-code step ends on return_to", async () => {
    const member = await memberWithApp();
    expect(await codeStep(member, "/settings/two-factor", "recovery", member.codes[0]!)).toBe(`${PUBLIC}/settings/two-factor`);
  });

  it("single sign-on ends on return_to, and the sign-in page's SSO link carries it", async () => {
    const page = await new Browser(t.app).get(loginWith("/login", `${APP}/sso-landing`));
    expect(page.body).toContain(`href="/login/sso?return_to=${encodeURIComponent(`${APP}/sso-landing`)}"`);
    expect(await ssoSignIn(`${APP}/sso-landing`)).toBe(`${APP}/sso-landing`);
    expect(await ssoSignIn("/accounts")).toBe(`${PUBLIC}/accounts`);
  });

  it("a person in several accounts picks one on the picker, then goes to return_to", async () => {
    const me = await seedMember(t, { accountName: `Alpha ${newId().slice(0, 6)}` });
    const other = await seedMember(t, { role: "admin", accountName: `Bravo ${newId().slice(0, 6)}` });
    await addMembership(t, { userId: me.userId, accountId: other.accountId });
    const { browser, url } = await emailLinkSignIn(me, `${APP}/picked`);
    expect(url).toBe(`${PUBLIC}/accounts`);
    const picked = await browser.submit("/accounts", "/accounts/switch", { accountId: other.accountId });
    expect(picked.statusCode).toBe(303);
    expect((await landing(browser, picked)).url).toBe(`${APP}/picked`);
    expect((await browser.get("/api/v1/session")).json().account.id).toBe(other.accountId);
  });

  /** A password member on the email link in an account that requires the auth app. */
  async function owesAuthApp(): Promise<Member> {
    const member = await seedMember(t, { accountName: `Strict ${newId().slice(0, 6)}` });
    await t.ctx.db.updateTable("accounts").set({ two_factor_policy: "auth_app_required" }).where("id", "=", member.accountId).execute();
    return member;
  }

  async function finishForcedSetup(browser: Browser, member: Member): Promise<string> {
    const { done } = await enableAuthApp(t, member, browser);
    const next = /<a class="button" href="([^"]+)">Continue<\/a>/.exec(done.body)?.[1];
    expect(next).toBeDefined();
    return (await landing(browser, await browser.get(unescapeHtml(next!)))).url;
  }

  it('under "Require auth app" the person sets up the app first, then goes to return_to', async () => {
    const member = await owesAuthApp();
    const { browser, url } = await emailLinkSignIn(member, `${APP}/after-setup`);
    expect(url).toBe(`${PUBLIC}/settings/two-factor`);
    expect(await finishForcedSetup(browser, member)).toBe(`${APP}/after-setup`);
  });

  it("a signed-in member who owes the auth app and opens /login?return_to=… sets it up first, then goes there", async () => {
    const member = await owesAuthApp();
    const browser = await signedInBrowser(t, member);
    const { url } = await landing(browser, await browser.get(loginWith("/login", "/settings/team")));
    expect(url).toBe(`${PUBLIC}/settings/two-factor`);
    expect(await finishForcedSetup(browser, member)).toBe(`${PUBLIC}/settings/team`);
  });

  it("a held member who opens another page is sent to set up the app, then taken to that page", async () => {
    const member = await owesAuthApp();
    const browser = await signedInBrowser(t, member);
    const held = await browser.get("/settings/team?notice=x");
    expect(held.statusCode).toBe(303);
    expect(held.headers.location).toBe("/settings/two-factor");
    expect(await finishForcedSetup(browser, member)).toBe(`${PUBLIC}/settings/team?notice=x`);
  });

  it("a person already signed in who opens /login?return_to=… goes straight there", async () => {
    const browser = await signedInBrowser(t, await seedMember(t));
    const direct = await browser.get(loginWith("/login", `${APP}/x?y=1`));
    expect(direct.statusCode).toBe(303);
    expect(direct.headers.location).toBe(`${APP}/x?y=1`);
    const path = await browser.get(loginWith("/login", "/settings/profile"));
    expect(path.headers.location).toBe(`${PUBLIC}/settings/profile`);
    const sso = await browser.get(loginWith("/login/sso", "http://localhost:4000/admin"));
    expect(sso.headers.location).toBe("http://localhost:4000/admin");
  });

  it("the stored target is used once: the next visit to the continue step, and the next sign-in, go home", async () => {
    const member = await seedMember(t);
    const { browser, url } = await emailLinkSignIn(member, `${APP}/once`);
    expect(url).toBe(`${APP}/once`);
    expect([...browser.cookies.keys()].some((name) => name.includes("latchkey_return"))).toBe(false);
    const again = await browser.get("/login/continue");
    expect(again.headers.location).toBe("/");
    // A sign-in started without return_to in the same browser clears one left over from an abandoned start.
    const abandoned = await passwordStep(member, `${APP}/abandoned`);
    await passwordStep(member, undefined, { browser: abandoned.browser });
    const linked = await abandoned.browser.get(t.mail.lastLink(member.email));
    expect((await landing(abandoned.browser, linked)).url).toBe(HOME);
  });

  it("a changed or expired stored target leads home", async () => {
    const member = await seedMember(t);
    const { browser } = await passwordStep(member, `${APP}/changed`);
    const name = [...browser.cookies.keys()].find((key) => key.includes("latchkey_return"));
    expect(name).toBeDefined();
    const value = browser.cookies.get(name!)!;
    const flipped = value.slice(0, 20) + (value[20] === "A" ? "B" : "A") + value.slice(21);
    browser.cookies.set(name!, flipped);
    const linked = await browser.get(t.mail.lastLink(member.email));
    expect((await landing(browser, linked)).url).toBe(HOME);

    const late = await passwordStep(member, `${APP}/late`);
    const lateLink = await late.browser.get(t.mail.lastLink(member.email));
    expect(lateLink.headers.location).toBe("/login/continue");
    t.clock.advanceSeconds(t.config.limits.returnToTtlSeconds + 1);
    expect((await landing(late.browser, await late.browser.get("/login/continue"))).url).toBe(HOME);
  });

  it.each(REFUSED_RETURN_TO)("return_to %s is ignored: the sign-in ends on the home page", async (_what, raw) => {
    const member = await seedMember(t);
    // The page drops it (no hidden field, no SSO link carrying it) ...
    const page = await new Browser(t.app).get(loginWith("/login", raw));
    expect(page.statusCode).toBe(200);
    expect(hiddenReturnTo(page.body)).toBeUndefined();
    expect(page.body).not.toContain("return_to=");
    // ... and a form that sends it anyway ends at home, every redirect on an allowed origin.
    const { url } = await emailLinkSignIn(member, raw, { formReturnTo: raw });
    expect(url).toBe(HOME);
    // Already signed in: home, not there.
    const browser = await signedInBrowser(t, member);
    const direct = await browser.get(loginWith("/login", raw));
    expect(direct.statusCode).toBe(303);
    expect(direct.headers.location).toBe("/");
  });
});
