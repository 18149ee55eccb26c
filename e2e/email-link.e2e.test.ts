import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createAccountWithAdmin } from "../src/team/accounts.js";
import { seedMember } from "../test/helpers/app.js";
import { launchChromium, screenshot, sessionStatus, startE2eServer, type E2eServer } from "./helpers.js";

/**
 * A person in a real browser (Debian chromium) against a real Latchkey server on SQLite: invitation, password,
 * the same-browser email link and each way it is refused. Everything is found by its visible label or name.
 *
 * Each step is a person of their own, set up for that step alone (seeded in the database, or signed in through the
 * browser), so one step failing leaves the others to pass or fail on their own.
 */
describe("email-link sign-in in a browser", () => {
  let server: E2eServer;
  let browser: Browser;
  const contexts: BrowserContext[] = [];

  const accountName = "Difference Works";
  let people = 0;
  /** This step's person: a new address for each step. */
  let person = { name: "Ada Lovelace", email: "ada@example.com", password: "analytical engine notes 1843" };
  beforeEach(() => {
    people += 1;
    person = { ...person, email: `ada-${people}@example.com` };
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

  /** A fresh browser profile: its own cookies, nothing shared with any other context. */
  async function newPage(): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({ baseURL: server.baseUrl, viewport: { width: 900, height: 700 }, colorScheme: "light" });
    contexts.push(context);
    return { context, page: await context.newPage() };
  }

  async function heading(page: Page): Promise<string> {
    return ((await page.getByRole("heading", { level: 1 }).textContent()) ?? "").trim();
  }

  /** Password step through the form; ends on "Check your email" with a new link in the inbox. */
  async function enterPassword(page: Page): Promise<string> {
    const before = server.mail.count(person.email);
    await page.goto("/login");
    await page.getByLabel("Email").fill(person.email);
    await page.getByLabel("Password").fill(person.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Check your email" }).waitFor();
    expect(new URL(page.url()).pathname).toBe("/login/email");
    expect(server.mail.count(person.email)).toBe(before + 1);
    return server.mail.lastLink(person.email);
  }

  /** Opens an emailed link like clicking it in a mail client: a top-level navigation in that browser. */
  async function openLink(page: Page, link: string): Promise<number | undefined> {
    const response = await page.goto(link);
    return response?.status();
  }

  async function expectSignedIn(page: Page, context: BrowserContext): Promise<void> {
    await page.getByRole("heading", { name: `Welcome, ${person.name}` }).waitFor();
    expect(new URL(page.url()).pathname).toBe("/");
    const body = await page.locator("main").innerText();
    expect(body).toContain(person.email);
    expect(body).toContain(accountName);
    const session = await sessionStatus(context, server.baseUrl);
    expect(session.status).toBe(200);
    expect(session.body).toMatchObject({
      user: { email: person.email, name: person.name },
      account: { name: accountName },
      role: "admin",
      twoFactor: { method: "email_link" },
    });
  }

  async function expectNoSession(context: BrowserContext): Promise<void> {
    const session = await sessionStatus(context, server.baseUrl);
    expect(session.status).toBe(401);
    expect(session.body).toMatchObject({ error: "unauthenticated" });
  }

  async function signOut(page: Page): Promise<void> {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("status").filter({ hasText: "You are signed out." }).waitFor();
    expect(new URL(page.url()).pathname).toBe("/login");
  }

  /** The person as the invitation leaves them (step 1): admin of the account, with a password; seeded directly. */
  async function seedPerson(): Promise<void> {
    await seedMember(server, { email: person.email, password: person.password, name: person.name, role: "admin", accountName });
  }

  /** A fresh browser in which the person has signed in (password, then the link), on the home page. */
  async function signedInPage(): Promise<{ context: BrowserContext; page: Page }> {
    const main = await newPage();
    await openLink(main.page, await enterPassword(main.page));
    await expectSignedIn(main.page, main.context);
    return main;
  }

  it("1. accepts the invitation: name and password, then the sign-in page with a notice", async () => {
    const created = await createAccountWithAdmin(server.ctx, { name: accountName, adminEmail: person.email });
    if (!created.ok) throw new Error(created.message);
    expect(created.value.invitationUrl.startsWith(`${server.baseUrl}/invite/`)).toBe(true);

    const { page } = await newPage();
    await openLink(page, created.value.invitationUrl);
    expect(await heading(page)).toBe(`Join ${accountName}`);
    await screenshot(page, "01-invitation");
    await page.getByLabel("Name").fill(person.name);
    await page.getByLabel("Password").fill(person.password);
    await page.getByRole("button", { name: "Set password and join" }).click();

    await page.getByRole("heading", { name: "Sign in to Latchkey" }).waitFor();
    expect(new URL(page.url()).pathname).toBe("/login");
    expect(await page.getByRole("status").innerText()).toBe("Your password is set. Sign in to continue.");
    await screenshot(page, "02-login-after-invitation");

    // The invitation works once.
    const second = await newPage();
    expect(await openLink(second.page, created.value.invitationUrl)).toBe(410);
    expect(await heading(second.page)).toBe("This invitation does not work");
  });

  it("2. signs in with the password and the emailed link opened in the same browser", async () => {
    await seedPerson();
    const { page, context } = await newPage();
    const link = await enterPassword(page);
    expect(link.startsWith(`${server.baseUrl}/login/email/`)).toBe(true);
    expect(await page.locator("main").innerText()).toContain(person.email);
    await screenshot(page, "03-check-your-email");
    // Only the password so far: no session.
    await expectNoSession(context);

    await openLink(page, link);
    await expectSignedIn(page, context);
    // The spent token does not stay in the address bar.
    expect(page.url()).toBe(`${server.baseUrl}/`);
    await screenshot(page, "04-home");
    // The browser holds the session and challenge cookies as HttpOnly, SameSite=Lax: page scripts cannot read them.
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === "latchkey_session");
    expect(session).toMatchObject({ httpOnly: true, sameSite: "Lax", path: "/", secure: false });
    expect(cookies.some((c) => c.name === "latchkey_challenge")).toBe(false);
    expect(await page.evaluate(() => document.cookie)).not.toContain("latchkey_session");
  });

  it("3. refuses the link in another browser without spending it; the first browser still signs in with it", async () => {
    await seedPerson();
    const { page, context } = await signedInPage();
    await signOut(page);
    await expectNoSession(context);
    await screenshot(page, "05-signed-out");

    const link = await enterPassword(page);
    const other = await newPage();
    expect(await openLink(other.page, link)).toBe(403);
    expect(await heading(other.page)).toBe("Open this in the browser where you started");
    expect(await other.page.locator("main").innerText()).toContain("browser where you entered your password");
    await screenshot(other.page, "06-wrong-browser");
    await expectNoSession(other.context);
    // Nothing was spent: the browser that entered the password signs in with the same link.
    await openLink(page, link);
    await expectSignedIn(page, context);
    await expectNoSession(other.context);
  });

  it("4. refuses a link that was already used", async () => {
    await seedPerson();
    const { page, context } = await signedInPage();
    await signOut(page);
    const link = await enterPassword(page);
    await openLink(page, link);
    await expectSignedIn(page, context);
    await signOut(page);

    expect(await openLink(page, link)).toBe(410);
    expect(await heading(page)).toBe("This link was already used");
    expect(await page.locator("main").innerText()).toContain("already used");
    await screenshot(page, "07-link-used");
    await expectNoSession(context);
    // The way out is a visible link back to the sign-in form.
    await page.getByRole("link", { name: "Go to sign in" }).click();
    await page.getByRole("heading", { name: "Sign in to Latchkey" }).waitFor();
  });

  it("5. refuses an expired link (11 minutes later) and signs nobody in", async () => {
    await seedPerson();
    const { page, context } = await newPage();
    const link = await enterPassword(page);
    server.clock.advanceSeconds(11 * 60);
    expect(await openLink(page, link)).toBe(410);
    expect(await heading(page)).toBe("This link has expired");
    expect(await page.locator("main").innerText()).toContain("expired");
    await screenshot(page, "08-link-expired");
    await expectNoSession(context);
  });

  it('6. "Send a new link" voids the old link; the new one works', async () => {
    await seedPerson();
    const { page, context } = await newPage();
    const oldLink = await enterPassword(page);
    // Asking again at once is refused politely (cooldown); after it, a new link is sent.
    await page.getByRole("button", { name: "Send a new link" }).click();
    expect(await page.getByRole("alert").innerText()).toContain("moments ago");
    expect(server.mail.lastLink(person.email)).toBe(oldLink);
    server.clock.advanceSeconds(31);
    await page.getByRole("button", { name: "Send a new link" }).click();
    expect(await page.getByRole("status").innerText()).toContain("We sent a new link");
    await screenshot(page, "09-new-link-sent");
    const newLink = server.mail.lastLink(person.email);
    expect(newLink).not.toBe(oldLink);

    expect(await openLink(page, oldLink)).toBe(400);
    expect(await heading(page)).toBe("This link does not work");
    expect(await page.locator("main").innerText()).toContain("newer sign-in link");
    await screenshot(page, "10-old-link-refused");
    await expectNoSession(context);

    await openLink(page, newLink);
    await expectSignedIn(page, context);
    await signOut(page);
  });

  it("7. wrong password: an announced error, the email kept, and the form works from the keyboard", async () => {
    await seedPerson();
    const { page } = await newPage();
    await page.goto("/login");
    await screenshot(page, "11-login");
    // The first field has focus on load; Tab goes Email → Password → Sign in.
    const email = page.getByLabel("Email");
    const password = page.getByLabel("Password");
    const button = page.getByRole("button", { name: "Sign in" });
    expect(await email.evaluate((el) => el === document.activeElement)).toBe(true);
    await page.keyboard.type(person.email);
    await page.keyboard.press("Tab");
    expect(await password.evaluate((el) => el === document.activeElement)).toBe(true);
    await page.keyboard.type("not the password at all");
    await page.keyboard.press("Tab");
    expect(await button.evaluate((el) => el === document.activeElement)).toBe(true);
    const mailsBefore = server.mail.count(person.email);
    await page.keyboard.press("Enter");

    const alert = page.getByRole("alert");
    await alert.waitFor();
    expect(await alert.innerText()).toBe("The email or password is not correct.");
    expect(await page.getByLabel("Email").inputValue()).toBe(person.email);
    expect(await page.getByLabel("Password").inputValue()).toBe("");
    // With the email kept, the cursor waits in the password field.
    expect(await page.getByLabel("Password").evaluate((el) => el === document.activeElement)).toBe(true);
    expect(server.mail.count(person.email)).toBe(mailsBefore);
    await screenshot(page, "12-wrong-password");

    // Retyping the right password from the keyboard goes on to "Check your email".
    await page.keyboard.type(person.password);
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Check your email" }).waitFor();
    await page.emulateMedia({ colorScheme: "dark" });
    await screenshot(page, "13-check-your-email-dark");
  });
});
