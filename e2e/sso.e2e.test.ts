import type { Browser, BrowserContext, Page, Request } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAccountWithAdmin } from "../src/team/accounts.js";
import { connectSso } from "../src/team/sso.js";
import { ssoRedirectUri } from "../src/auth/sso-sign-in.js";
import { Browser as HttpBrowser } from "../test/helpers/app.js";
import { startTestIdp, type TestIdentity, type TestIdp } from "../test/helpers/oidc-provider.js";
import { launchChromium, screenshot, sessionStatus, startE2eServer, type E2eServer } from "./helpers.js";

/**
 * "Sign in with SSO" in a real browser (Debian chromium) against a real Latchkey server on SQLite and a real OpenID
 * provider (oidc-provider) on another loopback port. The account's provider is connected for its email domain the way
 * `latchkey sso connect` does it (connectSso). A person then goes /login → "Sign in with SSO" → work email →
 * "Continue with SSO" → the hand-over page (meta refresh, under Latchkey's CSP) → the provider → /sso/callback → home,
 * with no Latchkey second factor. The callback is bound to the browser that started it: another browser gets a clear
 * page and no session, and a spent callback cannot be replayed. Everything is found by its visible label or name.
 *
 * Each step starts from what it needs alone (a spent callback, an SSO member: made over HTTP by `ssoOverHttp`), so
 * one step failing does not fail another.
 */
describe("Sign in with SSO in a browser", () => {
  let server: E2eServer;
  let idp: TestIdp;
  let browser: Browser;
  const contexts: BrowserContext[] = [];

  const domain = "analytical.example";
  const accountName = "Analytical Engines";
  const grace: TestIdentity = {
    sub: "idp-user-grace",
    email: "Grace.Hopper@analytical.example",
    email_verified: true,
    name: "Grace Hopper",
  };
  const graceEmail = "grace.hopper@analytical.example";

  beforeAll(async () => {
    server = await startE2eServer();
    idp = await startTestIdp({ redirectUri: ssoRedirectUri(server.ctx) });
    const created = await createAccountWithAdmin(server.ctx, { name: accountName, adminEmail: `admin@${domain}` });
    if (!created.ok) throw new Error(created.message);
    // As `latchkey sso connect --account … --issuer … --client-id … --client-secret … --domain …` does.
    const connected = await connectSso(server.ctx, {
      accountId: created.value.accountId,
      issuer: idp.issuer,
      clientId: idp.clientId,
      clientSecret: idp.clientSecret,
      domains: [domain],
    });
    if (!connected.ok) throw new Error(connected.message);
    expect(connected.value.redirectUri).toBe(`${server.baseUrl}/sso/callback`);
    browser = await launchChromium();
  });

  afterAll(async () => {
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser?.close();
    await idp?.close();
    await server?.close();
  });

  /** A fresh browser profile: its own cookies (at Latchkey and at the provider), nothing shared with any other. */
  async function newPage(options: { javaScriptEnabled?: boolean } = {}): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({
      baseURL: server.baseUrl,
      viewport: { width: 900, height: 700 },
      colorScheme: "light",
      ...options,
    });
    contexts.push(context);
    return { context, page: await context.newPage() };
  }

  function path(page: Page): string {
    return new URL(page.url()).pathname;
  }

  async function heading(page: Page): Promise<string> {
    return ((await page.getByRole("heading", { level: 1 }).textContent()) ?? "").trim();
  }

  /** Every top-level document request of `page`, in order (to see the way through the provider). */
  function recordNavigations(page: Page): string[] {
    const urls: string[] = [];
    page.on("request", (request: Request) => {
      if (request.isNavigationRequest() && request.frame() === page.mainFrame()) urls.push(request.url());
    });
    return urls;
  }

  /** Content-Security-Policy violations Chromium reports on the console. */
  function recordCspViolations(page: Page): string[] {
    const violations: string[] = [];
    page.on("console", (message) => {
      if (/Content Security Policy/i.test(message.text())) violations.push(message.text());
    });
    return violations;
  }

  /** From /login to the SSO form, then the work email and "Continue with SSO" (does not wait for where it leads). */
  async function startSso(page: Page, input: string): Promise<void> {
    await page.goto("/login");
    await page.getByRole("link", { name: "Sign in with SSO" }).click();
    await page.getByRole("heading", { name: "Sign in with SSO" }).waitFor();
    expect(path(page)).toBe("/login/sso");
    await page.getByLabel("Work email or domain").fill(input);
    await page.getByRole("button", { name: "Continue with SSO" }).click();
  }

  async function expectSignedIn(page: Page, context: BrowserContext): Promise<void> {
    await page.getByRole("heading", { name: `Welcome, ${grace.name}` }).waitFor();
    expect(page.url()).toBe(`${server.baseUrl}/`);
    const body = await page.getByRole("main").innerText();
    expect(body).toContain(graceEmail);
    expect(body).toContain(accountName);
    expect(body).toContain("Two-factor authentication: SSO");
    const session = await sessionStatus(context, server.baseUrl);
    expect(session.status).toBe(200);
    expect(session.body).toMatchObject({
      user: { email: graceEmail, name: grace.name },
      account: { name: accountName },
      role: "member",
      twoFactor: { method: "sso" },
    });
  }

  async function expectNoSession(context: BrowserContext): Promise<void> {
    const session = await sessionStatus(context, server.baseUrl);
    expect(session.status).toBe(401);
    expect((await context.cookies()).some((c) => c.name === "latchkey_session")).toBe(false);
  }

  /**
   * A whole SSO sign-in of `who` over HTTP (the API, the provider, the callback in the same cookie jar): the person
   * is then an SSO member, and the returned callback URL is spent.
   */
  async function ssoOverHttp(who: TestIdentity): Promise<string> {
    const http = new HttpBrowser(server.app);
    const started = await http.request("POST", "/api/v1/login/sso", { json: { domain } });
    if (started.statusCode !== 200) throw new Error(`SSO start: ${started.statusCode} ${started.body}`);
    idp.nextUser = who;
    const callback = await idp.signIn(started.json<{ authorizationUrl: string }>().authorizationUrl);
    const done = await http.get(callback);
    if (done.statusCode !== 303) throw new Error(`SSO callback: ${done.statusCode} ${done.body.slice(0, 300)}`);
    return callback;
  }

  it("1. a person signs in with SSO: work email, hand-over page, the provider, the callback, home; method sso", async () => {
    const { context, page } = await newPage();
    const navigations = recordNavigations(page);
    const violations = recordCspViolations(page);
    idp.nextUser = grace;

    await page.goto("/login");
    await page.getByRole("link", { name: "Sign in with SSO" }).click();
    await page.getByRole("heading", { name: "Sign in with SSO" }).waitFor();
    await screenshot(page, "sso-01-login-sso");

    await page.getByLabel("Work email or domain").fill(`grace.hopper@${domain}`);
    await page.getByRole("button", { name: "Continue with SSO" }).click();
    // No click on "Continue to sign in": the hand-over page's meta refresh alone takes the browser to the provider.
    await expectSignedIn(page, context);
    await screenshot(page, "sso-03-home");

    // The way it went: Latchkey's form, the provider (and its interaction), Latchkey's callback, home.
    const callbacks = navigations.filter((u) => u.startsWith(`${server.baseUrl}/sso/callback?`));
    expect(callbacks).toHaveLength(1);
    const spentCallback = callbacks[0]!;
    const authAt = navigations.findIndex((u) => u.startsWith(`${idp.issuer}/auth?`));
    const callbackAt = navigations.indexOf(spentCallback);
    expect(authAt).toBeGreaterThan(navigations.indexOf(`${server.baseUrl}/login/sso`));
    expect(callbackAt).toBeGreaterThan(authAt);
    expect(navigations.at(-1)).toBe(`${server.baseUrl}/`);
    expect(violations).toEqual([]);
    // The spent state and code are not left in the address bar; the one-time SSO cookie is gone.
    expect(page.url()).not.toContain("state=");
    const cookies = await context.cookies(server.baseUrl);
    expect(cookies.some((c) => c.name === "latchkey_sso")).toBe(false);
    expect(cookies.find((c) => c.name === "latchkey_session")).toMatchObject({ httpOnly: true, sameSite: "Lax" });
  });

  it("2. the hand-over page explains where the person goes, and its link works when the refresh does not", async () => {
    const { context, page } = await newPage();
    idp.nextUser = grace;
    // The provider answers the refresh's request with 204 No Content: the browser stays on the hand-over page, as
    // it would if a browser ignored the refresh. (Holding the request instead leaves a navigation pending, during
    // which nothing on the page can be read or photographed.)
    let refreshed = 0;
    await page.route(`${idp.issuer}/auth?**`, async (route) => {
      refreshed += 1;
      await route.fulfill({ status: 204 });
    });
    await startSso(page, domain);
    await page.getByRole("heading", { name: "Continue to your identity provider" }).waitFor();
    await expect.poll(() => refreshed).toBe(1);
    expect(path(page)).toBe("/login/sso");
    expect(await page.getByRole("main").innerText()).toContain(
      `Single sign-on for ${domain} continues at your company's identity provider.`,
    );
    const link = page.getByRole("link", { name: "Continue to sign in" });
    expect((await link.getAttribute("href"))?.startsWith(`${idp.issuer}/auth?`)).toBe(true);
    expect(await page.locator('meta[http-equiv="refresh"]').getAttribute("content")).toBe(`0;url=${await link.getAttribute("href")}`);
    await screenshot(page, "sso-02-hand-over");

    await page.unroute(`${idp.issuer}/auth?**`);
    await link.click();
    await expectSignedIn(page, context);
  });

  it("3. the spent callback URL opened in another browser is refused with a clear page and signs nobody in", async () => {
    const spentCallback = await ssoOverHttp(grace);
    expect(spentCallback).not.toBe("");
    const { context, page } = await newPage();
    const response = await page.goto(spentCallback);
    expect(response?.status()).toBe(410);
    expect(await heading(page)).toBe("This single sign-on answer was already used");
    expect(await page.getByRole("main").innerText()).toContain("Start again from “Sign in with SSO”");
    await screenshot(page, "sso-04-replay-refused");
    await expectNoSession(context);
    await page.getByRole("link", { name: "Sign in with SSO" }).click();
    await page.getByRole("heading", { name: "Sign in with SSO" }).waitFor();
  });

  it("4. an unspent callback opened in another browser is refused and spends nothing; the browser that started it signs in", async () => {
    // Without JavaScript: the plain form and the meta refresh carry the browser to the provider.
    const { context, page } = await newPage({ javaScriptEnabled: false });
    let authorizationUrl = "";
    await page.route(`${idp.issuer}/auth?**`, async (route) => {
      authorizationUrl = route.request().url();
      await route.fulfill({ status: 204 });
    });
    await startSso(page, `grace.hopper@${domain}`);
    await expect.poll(() => authorizationUrl).not.toBe("");
    await page.unroute(`${idp.issuer}/auth?**`);
    // The person signs in at the provider; the provider's redirect back (the callback URL) is taken before this
    // browser follows it. (Playwright does not route the redirected hop, so the provider part is walked by the helper.)
    idp.nextUser = grace;
    const captured = await idp.signIn(authorizationUrl);
    expect(captured.startsWith(`${server.baseUrl}/sso/callback?`)).toBe(true);
    await expectNoSession(context);

    const other = await newPage();
    const refused = await other.page.goto(captured);
    expect(refused?.status()).toBe(403);
    expect(await heading(other.page)).toBe("Open this in the browser where you started");
    expect(await other.page.getByRole("main").innerText()).toContain("browser where you started");
    await screenshot(other.page, "sso-05-wrong-browser");
    await expectNoSession(other.context);

    // Nothing was spent: the browser that started the sign-in finishes it with the same answer.
    await page.goto(captured);
    await expectSignedIn(page, context);
    await expectNoSession(other.context);
    // And now it is spent for everyone, that browser included.
    const replay = await other.page.goto(captured);
    expect(replay?.status()).toBe(410);
    await expectNoSession(other.context);
  });

  it("5. an unknown domain gets a clear answer on the SSO page, and nobody is sent anywhere", async () => {
    const { context, page } = await newPage();
    const navigations = recordNavigations(page);
    await startSso(page, "someone@Unknown-Corp.example");
    const alert = page.getByRole("alert");
    await alert.waitFor();
    expect(await alert.innerText()).toContain("No single sign-on is set up for unknown-corp.example");
    expect(path(page)).toBe("/login/sso");
    // The field keeps what was typed, so it can be corrected.
    expect(await page.getByLabel("Work email or domain").inputValue()).toBe("someone@Unknown-Corp.example");
    await screenshot(page, "sso-06-unknown-domain");
    expect(navigations.some((u) => u.startsWith(idp.issuer))).toBe(false);
    await expectNoSession(context);
  });

  it("6. the SSO member's email with any password on the normal sign-in form gets the same answer as a wrong password", async () => {
    // Grace is an SSO member (signed in with SSO once), with no password login.
    await ssoOverHttp(grace);
    const { context, page } = await newPage();
    async function tryPassword(email: string, password: string): Promise<string> {
      await page.goto("/login");
      await page.getByLabel("Email").fill(email);
      await page.getByLabel("Password").fill(password);
      await page.getByRole("button", { name: "Sign in" }).click();
      const alert = page.getByRole("alert");
      await alert.waitFor();
      expect(path(page)).toBe("/login");
      return (await alert.innerText()).trim();
    }
    const ssoMember = await tryPassword(graceEmail, "any password at all 123");
    expect(ssoMember).toBe("The email or password is not correct.");
    await screenshot(page, "sso-07-sso-member-password-refused");
    // Exactly what an address with no login at all gets.
    expect(await tryPassword(`nobody@${domain}`, "any password at all 123")).toBe(ssoMember);
    await expectNoSession(context);
    expect(await page.getByRole("main").innerText()).not.toMatch(/single sign-on|SSO member/i);
  });
});
