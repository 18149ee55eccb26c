import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { seedMember } from "../test/helpers/app.js";
import { launchChromium, screenshot, sessionStatus, startE2eServer, type E2eServer } from "./helpers.js";

const FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0";

/**
 * Self-service in a real browser (Debian chromium) against a real Latchkey server on SQLite: where you are signed in
 * (two browsers, one signs the other out) and changing the email address from the settings to the link in the new
 * inbox. Everything is found by its visible label or name.
 */
describe("self-service in a browser: sessions and email address", () => {
  let server: E2eServer;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  let people = 0;
  let person = { name: "Katherine Johnson", email: "kj@example.com", password: "orbital trajectories 1962" };
  beforeEach(() => {
    people += 1;
    person = { ...person, email: `kj-${people}@example.com` };
  });

  beforeAll(async () => {
    server = await startE2eServer();
    browser = await launchChromium();
  });

  afterAll(async () => {
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser?.close();
    await server?.close();
  });

  /** A browser profile of its own (its own cookies); `userAgent` makes it another kind of browser. */
  async function newPage(userAgent?: string): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({
      baseURL: server.baseUrl,
      viewport: { width: 1000, height: 800 },
      colorScheme: "light",
      ...(userAgent ? { userAgent } : {}),
    });
    contexts.push(context);
    return { context, page: await context.newPage() };
  }

  /** Password, then the emailed link in the same browser: ends on the home page. */
  async function signIn(page: Page, email = person.email): Promise<void> {
    await page.goto("/login");
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill(person.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Check your email" }).waitFor();
    await page.goto(server.mail.lastLink(email));
    await page.getByRole("heading", { name: `Welcome, ${person.name}` }).waitFor();
  }

  it("the Sessions page lists both browsers, and signing out the other one ends it", async () => {
    await seedMember(server, { email: person.email, password: person.password, name: person.name, accountName: "Langley" });
    const here = await newPage();
    const there = await newPage(FIREFOX_WINDOWS);
    await signIn(here.page);
    await signIn(there.page);

    await here.page.getByRole("link", { name: "Settings", exact: true }).click();
    await here.page.getByRole("link", { name: "Sessions", exact: true }).click();
    await here.page.getByRole("heading", { name: "Where you're signed in" }).waitFor();
    const rows = here.page.locator("tbody tr");
    expect(await rows.count()).toBe(2);
    await expect.poll(async () => rows.nth(0).innerText()).toContain("This browser");
    expect(await rows.nth(0).innerText()).toContain("Chrome");
    expect(await rows.nth(1).innerText()).toContain("Firefox 121 on Windows");
    expect(await rows.nth(1).innerText()).toContain("Password and email link");
    await screenshot(here.page, "sessions");

    await here.page.getByRole("button", { name: /^Sign out Firefox 121 on Windows/ }).click();
    await here.page.getByText("That session is signed out.").waitFor();
    expect(await here.page.locator("tbody tr").count()).toBe(1);
    expect((await sessionStatus(here.context, server.baseUrl)).status).toBe(200);

    // The other browser is out: its next page is the sign-in page.
    expect((await sessionStatus(there.context, server.baseUrl)).status).toBe(401);
    await there.page.goto("/settings/team");
    expect(new URL(there.page.url()).pathname).toBe("/login");
  });

  it("changes the email address: the link to the new inbox, a notice to the old, other browsers signed out", async () => {
    await seedMember(server, { email: person.email, password: person.password, name: person.name, accountName: "Langley" });
    const newEmail = `kj-moved-${people}@example.org`;
    const here = await newPage();
    const there = await newPage(FIREFOX_WINDOWS);
    await signIn(here.page);
    await signIn(there.page);

    const { page } = here;
    await page.getByRole("link", { name: "Settings", exact: true }).click();
    await page.getByRole("link", { name: "Team Members", exact: true }).click();
    await page.getByRole("link", { name: "Edit your settings" }).click();
    await page.getByRole("link", { name: "Change email address" }).click();
    await page.getByRole("heading", { name: "Change email address" }).waitFor();
    await page.getByLabel("New email address").fill(newEmail);
    await page.getByRole("button", { name: "Send confirmation link" }).click();
    await page.getByText(`Check the inbox of ${newEmail}: we sent it a confirmation link.`).waitFor();
    await screenshot(page, "email-change-pending");

    // The old inbox is told at once, with a way to stop it.
    const notice = server.mail.last(person.email)!;
    expect(notice.subject).toContain("about to change");
    expect(notice.text).toContain("Stop this change");

    // The person opens the link from the new inbox in this browser.
    await page.goto(server.mail.lastLink(newEmail));
    await page.getByRole("heading", { name: "Confirm your new email address" }).waitFor();
    await page.getByRole("button", { name: "Confirm new address" }).click();
    await page.getByRole("heading", { name: "Your email address is changed" }).waitFor();
    expect(await page.locator("main").innerText()).toContain(`Your email address is now ${newEmail}`);

    const session = await sessionStatus(here.context, server.baseUrl);
    expect(session.status).toBe(200);
    expect(session.body).toMatchObject({ user: { email: newEmail } });
    expect((await sessionStatus(there.context, server.baseUrl)).status).toBe(401);
    expect(server.mail.last(person.email)!.subject).toContain("your email address was changed");

    // The header shows the new address; a fresh browser signs in with it.
    await page.getByRole("link", { name: "Back to your settings" }).click();
    expect(await page.locator("header").innerText()).toContain(newEmail);
    const fresh = await newPage();
    await signIn(fresh.page, newEmail);
  });
});
