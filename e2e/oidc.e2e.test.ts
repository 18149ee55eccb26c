import type { Browser, BrowserContext, Page, Request } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ssoRedirectUri } from "../src/auth/sso-sign-in.js";
import { createClient } from "../src/oidc/clients.js";
import { createAccountWithAdmin } from "../src/team/accounts.js";
import { connectSso } from "../src/team/sso.js";
import { seedMember } from "../test/helpers/app.js";
import { enableAuthApp } from "../test/helpers/auth-app.js";
import { startTestIdp, type TestIdentity, type TestIdp } from "../test/helpers/oidc-provider.js";
import { freePort } from "../test/helpers/ports.js";
import { authenticatorCode, launchChromium, readQrCode, screenshot, sessionStatus, startE2eServer, type E2eServer } from "./helpers.js";
import { startExampleApp, type ExampleApp } from "./oidc-example-app.js";

/**
 * An application that signs people in with Latchkey (the README's example app over openid-client, a real relying
 * party) in a real browser (Debian chromium), against a real Latchkey server: the person is sent to Latchkey, signs in
 * with password and the emailed link, comes back signed in to the application with the claims Latchkey issued, and
 * signs out from the application, which signs them out of Latchkey after asking.
 *
 * The other ways in, each a person of their own in an account of their own, through the same application: password and
 * a code from the auth app (acr `urn:latchkey:loa:app`, amr `pwd otp mfa`); single sign-on through a real test identity
 * provider (acr `urn:latchkey:loa:sso`, amr `ext` and the provider's own); and a member of an account that requires the
 * auth app, who is held at its setup (the application's callback is never reached) until they set it up in the
 * browser, and then lands in the application at the app level.
 */
describe("an application signs people in with Latchkey, in a browser", () => {
  let server: E2eServer;
  let app: ExampleApp;
  let browser: Browser;
  /** The test identity provider of the SSO step, started by that step alone (the others have no use for it). */
  let idp: TestIdp | undefined;
  const contexts: BrowserContext[] = [];
  const person = { name: "Ada Lovelace", email: "ada@example.com", password: "analytical engine notes 1843" };

  beforeAll(async () => {
    server = await startE2eServer();
    const port = await freePort();
    // As `latchkey client create --name "Example app" --redirect-uri … --post-logout-redirect-uri …` does.
    const registered = await createClient(server.ctx, {
      name: "Example app",
      redirectUris: [`http://127.0.0.1:${port}/callback`],
      postLogoutRedirectUris: [`http://127.0.0.1:${port}/signed-out`],
      public: false,
    });
    if (!registered.ok) throw new Error(registered.message);
    app = await startExampleApp({
      issuer: server.baseUrl,
      clientId: registered.value.clientId,
      clientSecret: registered.value.clientSecret!,
      port,
      allowInsecure: true,
    });
    await seedMember(server, { ...person, accountName: "Difference Works" });
    browser = await launchChromium();
  });

  afterAll(async () => {
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser?.close();
    await idp?.close();
    await app?.close();
    await server?.close();
  });

  /**
   * A fresh browser profile: its own cookies at Latchkey, at the application (and at a provider), nothing shared; with
   * the Content-Security-Policy violations Chromium reports on its page.
   */
  async function newPage(): Promise<{ context: BrowserContext; page: Page; violations: string[] }> {
    const context = await browser.newContext({ viewport: { width: 900, height: 700 }, colorScheme: "light" });
    contexts.push(context);
    const page = await context.newPage();
    return { context, page, violations: recordCspViolations(page) };
  }

  function path(page: Page): string {
    return new URL(page.url()).pathname;
  }

  /** Every time the browser reaches the application's callback (where it brings a code): in order, as they happen. */
  function recordAppCallbacks(context: BrowserContext): string[] {
    const callbacks: string[] = [];
    context.on("request", (request: Request) => {
      if (request.isNavigationRequest() && request.url().startsWith(`${app.origin}/callback`)) callbacks.push(request.url());
    });
    return callbacks;
  }

  /**
   * At the application: "Sign in with Latchkey" leads to Latchkey's sign-in page, which will return to this sign-in
   * request (the provider's interaction). Returns the interaction's URL.
   */
  async function startAtTheApp(page: Page): Promise<string> {
    await page.goto(app.origin);
    await page.getByRole("link", { name: "Sign in with Latchkey" }).click();
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    const login = new URL(page.url());
    expect(login.origin).toBe(server.baseUrl);
    expect(login.pathname).toBe("/login");
    const returnTo = login.searchParams.get("return_to") ?? "";
    expect(returnTo).toMatch(/^\/oidc\/interaction\/[A-Za-z0-9_-]{43}$/);
    return new URL(returnTo, server.baseUrl).href;
  }

  /** Email and Password on Latchkey's sign-in form (does not wait for where it leads). */
  async function enterPassword(page: Page, who: { email: string; password: string }): Promise<void> {
    await page.getByLabel("Email").fill(who.email);
    await page.getByLabel("Password").fill(who.password);
    await page.getByRole("button", { name: "Sign in" }).click();
  }

  /**
   * Back in the application, signed in: who it says the person is, and how they signed in (the ID token's acr and amr).
   * If not, says where the browser stopped and what Chromium blocked.
   */
  async function expectSignedInToTheApp(
    page: Page,
    name: string,
    violations: string[],
  ): Promise<{ who: string; acr: string; amr: string[] }> {
    const signedIn = page.getByRole("heading", { name: `Hello, ${name}` });
    await signedIn.waitFor().catch(async (error: unknown) => {
      const text = await page
        .locator("main")
        .innerText()
        .catch(() => "");
      const shown = text.replace(/\s+/g, " ").slice(0, 300);
      const blocked = JSON.stringify(violations);
      throw new Error(`not signed in to the app: stopped at ${page.url()} ("${shown}"); CSP violations: ${blocked}`, { cause: error });
    });
    expect(new URL(page.url()).origin).toBe(app.origin);
    const how = (await page.locator("#how").innerText()).trim();
    const match = /^acr (\S+), amr ?(.*)$/.exec(how);
    expect(match, `the claims shown: "${how}"`).not.toBeNull();
    return {
      who: (await page.locator("#who").innerText()).trim(),
      acr: match![1]!,
      amr: match![2]!.split(" ").filter((value) => value !== ""),
    };
  }

  function recordCspViolations(page: Page): string[] {
    const violations: string[] = [];
    page.on("console", (message) => {
      if (/Content Security Policy/i.test(message.text())) violations.push(message.text());
    });
    return violations;
  }

  it("sign in to the app with Latchkey's email link, see the claims, and sign out of both", async () => {
    const context = await browser.newContext({ viewport: { width: 900, height: 700 }, colorScheme: "light" });
    contexts.push(context);
    const page = await context.newPage();
    const violations = recordCspViolations(page);

    await page.goto(app.origin);
    await page.getByRole("link", { name: "Sign in with Latchkey" }).click();
    // Latchkey's own sign-in page, which will bring the person back to this sign-in request.
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    const login = new URL(page.url());
    expect(login.origin).toBe(server.baseUrl);
    expect(login.pathname).toBe("/login");
    expect(login.searchParams.get("return_to")).toMatch(/^\/oidc\/interaction\/[A-Za-z0-9_-]{43}$/);
    await screenshot(page, "oidc-01-latchkey-sign-in");

    await page.getByLabel("Email").fill(person.email);
    await page.getByLabel("Password").fill(person.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Check your email" }).waitFor();
    await page.goto(server.mail.lastLink(person.email));
    // Signed in to Latchkey. (With `return_to` the browser is back at the application already; either way, the
    // application's sign-in now passes through Latchkey without a question.)
    await page.waitForURL((url) => !url.pathname.startsWith("/login/email/"));
    await page.goto(`${app.origin}/login`);
    await page.getByRole("heading", { name: `Hello, ${person.name}` }).waitFor();
    expect(new URL(page.url()).origin).toBe(app.origin);
    expect(await page.locator("#who").innerText()).toBe(`${person.email} in Difference Works (member)`);
    expect(await page.locator("#how").innerText()).toBe("acr urn:latchkey:loa:email, amr pwd");
    await screenshot(page, "oidc-02-signed-in-to-the-app");

    await page.getByRole("link", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign out of Latchkey?" }).waitFor();
    expect(await page.getByRole("main").innerText()).toContain("from Example app");
    await screenshot(page, "oidc-03-sign-out-asked");
    await page.getByRole("button", { name: "Sign out", exact: true }).click();
    // The form posts to Latchkey, which redirects to the application: the CSP lets that redirect through.
    await page.getByRole("heading", { name: "Signed out" }).waitFor();
    expect(page.url()).toBe(`${app.origin}/signed-out`);
    expect((await sessionStatus(context, server.baseUrl)).status).toBe(401);
    expect(violations).toEqual([]);
  });

  it("sign in to the app with Latchkey's password and a code from the auth app: acr app, amr pwd otp mfa", async () => {
    const grace = { name: "Grace Hopper", email: "grace@example.com", password: "compiler for the harvard mark" };
    await seedMember(server, { ...grace, accountName: "Eckert Mauchly" });
    // Grace set up the auth app earlier (through the settings pages, over HTTP here) and kept its key in her phone.
    const { secret } = await enableAuthApp(server, grace);
    const { context, page, violations } = await newPage();
    const callbacks = recordAppCallbacks(context);

    await startAtTheApp(page);
    const mailsBefore = server.mail.count(grace.email);
    await enterPassword(page, grace);
    await page.getByRole("heading", { name: "Enter your authentication code" }).waitFor();
    expect(path(page)).toBe("/login/code");
    // The app is the second factor: no email link, and nothing for the application yet.
    expect(server.mail.count(grace.email)).toBe(mailsBefore);
    expect(callbacks).toEqual([]);
    await screenshot(page, "oidc-04-auth-app-code");

    // The code that confirmed the setup is spent: the app shows the next one 30 seconds later.
    server.clock.advanceSeconds(30);
    await page.getByLabel("Authentication code").fill(authenticatorCode(secret, server.clock));
    await page.getByRole("button", { name: "Verify" }).click();
    const shown = await expectSignedInToTheApp(page, grace.name, violations);
    expect(callbacks).toHaveLength(1);
    expect(shown.who).toBe(`${grace.email} in Eckert Mauchly (member)`);
    expect(shown.acr).toBe("urn:latchkey:loa:app");
    expect(shown.amr).toEqual(expect.arrayContaining(["pwd", "otp", "mfa"]));
    await screenshot(page, "oidc-05-signed-in-with-auth-app");
    expect((await sessionStatus(context, server.baseUrl)).body).toMatchObject({ twoFactor: { method: "auth_app" } });
    expect(violations).toEqual([]);
  });

  it("sign in to the app through single sign-on: acr sso, amr ext and then the identity provider's own", async () => {
    idp = await startTestIdp({ redirectUri: ssoRedirectUri(server.ctx) });
    const domain = "analytical.example";
    const accountName = "Analytical Engines";
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
    const annie: TestIdentity = {
      sub: "idp-user-annie",
      email: `Annie.Easley@${domain}`,
      email_verified: true,
      name: "Annie Easley",
      amr: ["pwd", "mfa"],
    };
    idp.nextUser = annie;
    const { context, page, violations } = await newPage();
    const navigations: string[] = [];
    page.on("request", (request: Request) => {
      if (request.isNavigationRequest() && request.frame() === page.mainFrame()) navigations.push(request.url());
    });

    await startAtTheApp(page);
    await page.getByRole("link", { name: "Sign in with SSO" }).click();
    await page.getByRole("heading", { name: "Sign in with SSO" }).waitFor();
    const ssoForm = new URL(page.url());
    expect(ssoForm.pathname).toBe("/login/sso");
    const carried = new URL(ssoForm.searchParams.get("return_to") ?? "", server.baseUrl);
    expect(carried.origin).toBe(server.baseUrl);
    expect(carried.pathname).toMatch(/^\/oidc\/interaction\/[A-Za-z0-9_-]{43}$/);
    await page.getByLabel("Work email or domain").fill(`annie.easley@${domain}`);
    await page.getByRole("button", { name: "Continue with SSO" }).click();
    // The hand-over page's refresh, the provider (no questions: it signs in `nextUser`), Latchkey's SSO callback, and
    // on to the application with a code.
    const shown = await expectSignedInToTheApp(page, annie.name!, violations);
    expect(shown.who).toBe(`annie.easley@${domain} in ${accountName} (member)`);
    expect(shown.acr).toBe("urn:latchkey:loa:sso");
    expect(shown.amr).toContain("ext");
    expect(shown.amr).toEqual(["ext", "pwd", "mfa"]);
    await screenshot(page, "oidc-06-signed-in-with-sso");

    const at = (prefix: string): number => navigations.findIndex((url) => url.startsWith(prefix));
    expect(at(`${idp.issuer}/auth?`)).toBeGreaterThan(at(`${server.baseUrl}/login/sso`));
    expect(at(`${server.baseUrl}/sso/callback?`)).toBeGreaterThan(at(`${idp.issuer}/auth?`));
    expect(at(`${app.origin}/callback?`)).toBeGreaterThan(at(`${server.baseUrl}/sso/callback?`));
    expect(navigations.filter((url) => url.startsWith(`${app.origin}/callback?`))).toHaveLength(1);
    expect((await sessionStatus(context, server.baseUrl)).body).toMatchObject({ twoFactor: { method: "sso" } });
    expect(violations).toEqual([]);
  });

  it('"Require auth app": a member without it is held at setup (the app gets no code), sets it up, and lands in the app with acr app', async () => {
    const accountName = "Apollo Guidance";
    const admin = { name: "Margaret Hamilton", email: "margaret@example.com", password: "priority displays saved apollo 11" };
    const katherine = { name: "Katherine Johnson", email: "katherine@example.com", password: "trajectories for friendship seven" };
    const seeded = await seedMember(server, { ...admin, role: "admin", accountName });
    await seedMember(server, { ...katherine, accountId: seeded.accountId });
    // The admin sets up the auth app and requires it for the team (Settings → Security → Enable Auth App), over HTTP.
    const { browser: adminHttp } = await enableAuthApp(server, admin);
    const required = await adminHttp.request("PUT", "/api/v1/policy", { json: { policy: "auth_app_required" } });
    if (required.statusCode !== 200) throw new Error(`requiring the auth app: ${required.statusCode} ${required.body}`);

    const { context, page, violations } = await newPage();
    const callbacks = recordAppCallbacks(context);
    const returnTo = await startAtTheApp(page);
    await enterPassword(page, katherine);
    await page.getByRole("heading", { name: "Check your email" }).waitFor();
    await page.goto(server.mail.lastLink(katherine.email));

    // Signed in to Latchkey, and held at setup: the application has been sent nothing.
    const setUpFirst = `${accountName} requires the auth app for every team member: set it up to continue.`;
    await page.getByRole("heading", { name: "Two-factor authentication", level: 1 }).waitFor();
    expect(path(page)).toBe("/settings/two-factor");
    expect(await page.getByRole("main").innerText()).toContain(setUpFirst);
    expect(callbacks).toEqual([]);
    await screenshot(page, "oidc-07-held-at-setup");
    // Nothing else at Latchkey is reachable meanwhile: the sign-in request itself leads back to setup.
    await page.goto(returnTo);
    await page.getByRole("heading", { name: "Two-factor authentication", level: 1 }).waitFor();
    expect(path(page)).toBe("/settings/two-factor");
    expect(callbacks).toEqual([]);

    // "Enable: set up the auth app" → save the codes → Next → scan the QR code → a code from the app → Verify. (Just signed in: no password
    // to confirm.)
    await page.getByRole("button", { name: "Enable: set up the auth app", exact: true }).click();
    await page.getByRole("heading", { name: "Step 1 of 3: save your recovery codes" }).waitFor();
    await page.getByLabel("I have saved my recovery codes").check();
    await page.getByRole("button", { name: "Next" }).click();
    await page.getByRole("heading", { name: "Step 2 of 3: scan the QR code" }).waitFor();
    const uri = new URL(await readQrCode(page.getByRole("figure", { name: "QR code for your authenticator app" })));
    expect(decodeURIComponent(uri.pathname)).toBe(`/Latchkey:${katherine.email}`);
    const secret = uri.searchParams.get("secret") ?? "";
    expect(secret).toMatch(/^[A-Z2-7]{32}$/);
    expect(callbacks).toEqual([]);
    await page.getByLabel("Authentication code").fill(authenticatorCode(secret, server.clock));
    await page.getByRole("button", { name: "Verify" }).click();
    await page.getByRole("heading", { name: "Success!" }).waitFor();
    expect(callbacks).toEqual([]);
    await screenshot(page, "oidc-08-setup-done");

    // "Continue" goes on to the application's sign-in, which now gets its code.
    await page.getByRole("link", { name: "Continue" }).click();
    const shown = await expectSignedInToTheApp(page, katherine.name, violations);
    expect(callbacks).toHaveLength(1);
    expect(shown.who).toBe(`${katherine.email} in ${accountName} (member)`);
    // The code entered at setup proved the app in this session.
    expect(shown.acr).toBe("urn:latchkey:loa:app");
    expect(shown.amr).toEqual(expect.arrayContaining(["pwd", "otp", "mfa"]));
    await screenshot(page, "oidc-09-signed-in-after-setup");
    expect((await sessionStatus(context, server.baseUrl)).body).toMatchObject({ twoFactor: { method: "auth_app" } });
    expect(violations).toEqual([]);
  });
});
