import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../src/oidc/clients.js";
import { seedMember } from "../test/helpers/app.js";
import { freePort } from "../test/helpers/ports.js";
import { launchChromium, screenshot, sessionStatus, startE2eServer, type E2eServer } from "./helpers.js";
import { startExampleApp, type ExampleApp } from "./oidc-example-app.js";

/**
 * An application that signs people in with Latchkey (the README's example app over openid-client, a real relying
 * party) in a real browser (Debian chromium), against a real Latchkey server: the person is sent to Latchkey, signs in
 * with password and the emailed link, comes back signed in to the application with the claims Latchkey issued, and
 * signs out from the application, which signs them out of Latchkey after asking.
 */
describe("an application signs people in with Latchkey, in a browser", () => {
  let server: E2eServer;
  let app: ExampleApp;
  let browser: Browser;
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
    await app?.close();
    await server?.close();
  });

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
});
