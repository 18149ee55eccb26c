import { readFileSync } from "node:fs";
import jsQRModule from "jsqr";
import { generateSync } from "otplib";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { PNG } from "pngjs";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createAccountWithAdmin } from "../src/team/accounts.js";
import { seedMember, signedInBrowser, type Browser as HttpBrowser } from "../test/helpers/app.js";
import { enableAuthApp, passwordStep, submitRecoveryCode as submitRecoveryCodeOverHttp } from "../test/helpers/auth-app.js";
import { adoptCookies, launchChromium, screenshot, sessionStatus, startE2eServer, type E2eServer } from "./helpers.js";

// jsqr is CommonJS with an ES-style `default` in its types: under NodeNext the function is `.default` of the module.
const jsQR = jsQRModule.default;

/**
 * A person sets up the auth app in a real browser (Debian chromium) against a real Latchkey server on SQLite, the way
 * the seed describes it: Settings → Team Members → Edit your settings → Manage → Enable; saves the ten recovery codes
 * (downloaded file, print view), scans the QR code (a real QR decoder reads a screenshot of it), confirms with a code
 * computed from what was scanned, then signs in with app codes and recovery codes. Everything is found by its visible
 * label or name; the only thing the test reaches into is the server's clock, which stands in for the phone's.
 *
 * Each step is a person of their own, brought to where the step starts by its own setup (seeded in the database, the
 * earlier pages walked without checks, or the auth app set up over HTTP), so one step failing does not fail the next.
 */
describe("auth app setup and sign-in in a browser", () => {
  let server: E2eServer;
  let browser: Browser;
  const contexts: BrowserContext[] = [];

  const accountName = "Eckert Mauchly";
  let people = 0;
  /** This step's person: a new address for each step. */
  let person = { name: "Grace Hopper", email: "grace@example.com", password: "compiler for the harvard mark" };
  beforeEach(() => {
    people += 1;
    person = { ...person, email: `grace-${people}@example.com` };
  });
  const CODE = /^[0-9a-z]{5}-[0-9a-z]{5}-[0-9a-z]{5}$/;

  beforeAll(async () => {
    server = await startE2eServer();
    browser = await launchChromium();
  });

  afterAll(async () => {
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser?.close();
    await server?.close();
  });

  async function newPage(): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({
      baseURL: server.baseUrl,
      viewport: { width: 900, height: 800 },
      colorScheme: "light",
      acceptDownloads: true,
    });
    contexts.push(context);
    return { context, page: await context.newPage() };
  }

  async function heading(page: Page): Promise<string> {
    return ((await page.getByRole("heading", { level: 1 }).textContent()) ?? "").trim();
  }

  function path(page: Page): string {
    return new URL(page.url()).pathname;
  }

  /** The code an authenticator app shows now for `secret`, by the server's clock (the phone's clock in real life). */
  function appCode(secret: string): string {
    return generateSync({ secret, epoch: Math.floor(server.clock.now() / 1000) });
  }

  /** The recovery codes listed on the page, in order. */
  async function listedCodes(page: Page): Promise<string[]> {
    const items = await page.locator("#recovery-codes li").allInnerTexts();
    return items.map((item) => item.trim());
  }

  /**
   * The codes are legible: between a code in the left column and a code in the right one there is room for the right
   * column's numbers ("10. ", about 2.5em in monospace) and then at least 1em of space (once they ran together as
   * "761zz10. 5t799…").
   */
  async function expectCodesReadable(page: Page): Promise<void> {
    const layout = await page.locator("#recovery-codes").evaluate((ol) => ({
      em: parseFloat(getComputedStyle(ol).fontSize),
      boxes: [...ol.querySelectorAll("li")].map((li) => {
        const range = document.createRange();
        range.selectNodeContents(li);
        const box = range.getBoundingClientRect();
        return { left: box.left, right: box.right };
      }),
    }));
    const firstLeft = Math.min(...layout.boxes.map((b) => b.left));
    const left = layout.boxes.filter((b) => b.left === firstLeft);
    const right = layout.boxes.filter((b) => b.left !== firstLeft);
    if (right.length === 0) return; // one column: nothing beside a code
    const space = Math.min(...right.map((b) => b.left)) - Math.max(...left.map((b) => b.right));
    expect(space / layout.em).toBeGreaterThanOrEqual(3.5);
  }

  /** Email + Password on the sign-in form; returns where that led (the second-factor step). */
  async function enterPassword(page: Page, password = person.password): Promise<void> {
    await page.goto("/login");
    await page.getByLabel("Email").fill(person.email);
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Sign in" }).click();
  }

  async function expectSignedIn(page: Page, context: BrowserContext, method: "email_link" | "auth_app"): Promise<void> {
    await page.getByRole("heading", { name: `Welcome, ${person.name}` }).waitFor();
    expect(path(page)).toBe("/");
    const session = await sessionStatus(context, server.baseUrl);
    expect(session.status).toBe(200);
    expect(session.body).toMatchObject({ user: { email: person.email }, account: { name: accountName }, twoFactor: { method } });
  }

  async function expectNoSession(context: BrowserContext): Promise<void> {
    expect((await sessionStatus(context, server.baseUrl)).status).toBe(401);
  }

  async function signOut(page: Page, context: BrowserContext): Promise<void> {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("status").filter({ hasText: "You are signed out." }).waitFor();
    expect(path(page)).toBe("/login");
    await expectNoSession(context);
  }

  /** Password, then "Use a recovery code" on the code page, then the code. Leaves the page wherever that led. */
  async function submitRecoveryCode(page: Page, code: string): Promise<void> {
    await enterPassword(page);
    await page.getByRole("heading", { name: "Enter your authentication code" }).waitFor();
    await page.getByRole("link", { name: "Use a recovery code" }).click();
    await page.getByRole("heading", { name: "Use a recovery code" }).waitFor();
    expect(path(page)).toBe("/login/recovery");
    await page.getByLabel("Recovery code").fill(code);
    await page.getByRole("button", { name: "Verify" }).click();
    await page.waitForLoadState();
  }

  async function expectRecoveryCodeRefused(page: Page, context: BrowserContext): Promise<void> {
    const alert = page.getByRole("alert");
    await alert.waitFor();
    expect(await alert.innerText()).toContain("That recovery code is not right, or it was already used.");
    expect(path(page)).toBe("/login/recovery");
    expect(await heading(page)).toBe("Use a recovery code");
    await expectNoSession(context);
  }

  /** The person as step 1's invitation leaves them: admin of the account, with a password and the email link; seeded. */
  async function seedPerson(): Promise<void> {
    await seedMember(server, { email: person.email, password: person.password, name: person.name, role: "admin", accountName });
  }

  /** A fresh browser holding the session of `from` (signed in over HTTP), on the home page. */
  async function pageSignedInAs(from: HttpBrowser): Promise<{ context: BrowserContext; page: Page }> {
    const main = await newPage();
    await adoptCookies(main.context, from, server.baseUrl);
    await main.page.goto("/");
    await main.page.getByRole("heading", { name: `Welcome, ${person.name}` }).waitFor();
    return main;
  }

  /** Where step 2 starts: signed in with the email link, Enable pressed; the page shows step 1 of the setup. */
  async function atSetupStep1(): Promise<{ context: BrowserContext; page: Page }> {
    await seedPerson();
    const main = await pageSignedInAs(await signedInBrowser(server, person));
    await main.page.goto("/settings/two-factor");
    await main.page.getByRole("button", { name: "Enable: set up the auth app", exact: true }).click();
    await main.page.getByRole("heading", { name: "Step 1 of 3: save your recovery codes" }).waitFor();
    return main;
  }

  /** Where step 3 starts: the codes confirmed as saved; the page shows the QR code. */
  async function atSetupStep2(): Promise<{ context: BrowserContext; page: Page }> {
    const main = await atSetupStep1();
    await main.page.getByLabel("I have saved my recovery codes").check();
    await main.page.getByRole("button", { name: "Next" }).click();
    await main.page.getByRole("heading", { name: "Step 2 of 3: scan the QR code" }).waitFor();
    return main;
  }

  /**
   * Where steps 4 to 6 start: the auth app set up over HTTP (the key and the ten codes kept, as the person kept them),
   * and a browser signed in (the session that set it up) on the home page.
   */
  async function withAuthApp(): Promise<{ main: { context: BrowserContext; page: Page }; savedCodes: string[]; secret: string }> {
    await seedPerson();
    const enabled = await enableAuthApp(server, person);
    return { main: await pageSignedInAs(enabled.browser), savedCodes: enabled.codes, secret: enabled.secret };
  }

  it("1. signs in with the emailed link and goes Settings → Team Members → Edit your settings → Manage → Enable", async () => {
    const created = await createAccountWithAdmin(server.ctx, { name: accountName, adminEmail: person.email });
    if (!created.ok) throw new Error(created.message);
    const { page, context } = await newPage();
    await page.goto(created.value.invitationUrl);
    await page.getByLabel("Name").fill(person.name);
    await page.getByLabel("Password").fill(person.password);
    await page.getByRole("button", { name: "Set password and join" }).click();
    await page.getByRole("heading", { name: "Sign in to Latchkey" }).waitFor();

    await enterPassword(page);
    await page.getByRole("heading", { name: "Check your email" }).waitFor();
    await page.goto(server.mail.lastLink(person.email));
    await expectSignedIn(page, context, "email_link");

    await page.getByRole("link", { name: "Settings", exact: true }).click();
    await page.getByRole("heading", { name: "Account Settings" }).waitFor();
    await page.getByRole("main").getByRole("link", { name: "Team Members" }).click();
    await page.getByRole("heading", { name: "Team Members" }).waitFor();
    // The admin sees each member's method; for now: the email link.
    const row = page.getByRole("row").filter({ hasText: person.email });
    expect(await row.innerText()).toContain("Email link");
    await screenshot(page, "auth-app-01-team-members");
    await page.getByRole("link", { name: "Edit your settings" }).click();
    await page.getByRole("heading", { name: "Your settings" }).waitFor();
    expect(await page.getByRole("main").innerText()).toContain("Method: Email link");
    await page.getByRole("link", { name: "Manage" }).click();
    await page.getByRole("heading", { name: "Two-factor authentication" }).waitFor();
    expect(path(page)).toBe("/settings/two-factor");
    await screenshot(page, "auth-app-02-manage");
    // The seed's words still lead the way ("Click Manage … Then click Enable"): the one button that starts with
    // "Enable" is the one that sets up the auth app, and it says so.
    const enable = page.getByRole("button", { name: /^Enable\b/ });
    expect(await enable.allInnerTexts()).toEqual(["Enable: set up the auth app"]);
    await enable.click();
    await page.getByRole("heading", { name: "Step 1 of 3: save your recovery codes" }).waitFor();
  });

  it("2. step 1: ten recovery codes, downloaded as a file and printed, then confirmed as saved", async () => {
    const { page, context } = await atSetupStep1();
    const savedCodes = await listedCodes(page);
    expect(savedCodes).toHaveLength(10);
    for (const code of savedCodes) expect(code).toMatch(CODE);
    expect(new Set(savedCodes).size).toBe(10);
    await expectCodesReadable(page);
    await screenshot(page, "auth-app-03-recovery-codes");

    // Download: a .txt file named for the product and the person, holding exactly the codes shown.
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Download" }).click()]);
    const fileName = download.suggestedFilename();
    expect(fileName).toContain("latchkey");
    expect(fileName).toContain("recovery-codes");
    expect(fileName).toContain(person.email);
    expect(fileName.endsWith(".txt")).toBe(true);
    const file = readFileSync(await download.path(), "utf8");
    const codesInFile = file
      .split(/\r?\n/)
      .filter((line) => CODE.test(line.trim()))
      .map((line) => line.trim());
    expect(codesInFile).toEqual(savedCodes);
    expect(file).toContain(person.email);
    // Downloading does not leave the page.
    expect(await heading(page)).toBe("Step 1 of 3: save your recovery codes");

    // Print: a separate print-friendly page with the same codes.
    const [printView] = await Promise.all([context.waitForEvent("page"), page.getByRole("link", { name: "Print" }).click()]);
    await printView.waitForLoadState();
    await printView.getByRole("heading", { name: "Latchkey recovery codes" }).waitFor();
    expect((await printView.locator("li").allInnerTexts()).map((c) => c.trim())).toEqual(savedCodes);
    expect(await printView.locator("body").innerText()).toContain(person.email);
    await screenshot(printView, "auth-app-04-print-view");
    await printView.close();

    // Copy (for people with JavaScript, which this browser has) puts the ten codes on the clipboard.
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.baseUrl });
    await page.getByRole("button", { name: "Copy" }).click();
    await page.getByRole("status").filter({ hasText: "Copied to the clipboard." }).waitFor();
    expect((await page.evaluate(() => navigator.clipboard.readText())).split("\n")).toEqual(savedCodes);

    // "Next" without the box ticked keeps the person on step 1, with the reason.
    await page.getByRole("button", { name: "Next" }).click();
    await page.getByRole("alert").waitFor();
    expect(await page.getByRole("alert").innerText()).toContain("Confirm that you saved your recovery codes");
    expect(await listedCodes(page)).toEqual(savedCodes);

    await page.getByLabel("I have saved my recovery codes").check();
    await page.getByRole("button", { name: "Next" }).click();
    await page.getByRole("heading", { name: "Step 2 of 3: scan the QR code" }).waitFor();
  });

  it("3. step 2: the QR code, read from a screenshot by a real decoder, holds the key shown; a code from it confirms", async () => {
    const { page, context } = await atSetupStep2();
    await screenshot(page, "auth-app-05-qr-code");
    const figure = page.getByRole("figure", { name: "QR code for your authenticator app" });
    expect(await figure.locator("svg").count()).toBe(1);
    const png = PNG.sync.read(await figure.screenshot({ type: "png" }));
    const decoded = jsQR(new Uint8ClampedArray(png.data.buffer, png.data.byteOffset, png.data.byteLength), png.width, png.height);
    expect(decoded, "a QR code in the screenshot").not.toBeNull();
    const uri = new URL(decoded!.data);
    expect(uri.protocol).toBe("otpauth:");
    expect(uri.host).toBe("totp");
    expect(decodeURIComponent(uri.pathname)).toBe(`/Latchkey:${person.email}`);
    expect(uri.searchParams.get("issuer")).toBe("Latchkey");
    expect(uri.searchParams.get("algorithm")).toBe("SHA1");
    expect(uri.searchParams.get("digits")).toBe("6");
    expect(uri.searchParams.get("period")).toBe("30");
    const secret = uri.searchParams.get("secret") ?? "";
    expect(secret).toMatch(/^[A-Z2-7]{32}$/);

    // The same key for typing in by hand, in groups of four.
    const manualKey = (await page.locator("#manual-key").innerText()).trim();
    expect(manualKey).toMatch(/^([A-Z2-7]{4} ){7}[A-Z2-7]{4}$/);
    expect(manualKey.replace(/ /g, "")).toBe(secret);

    // Nothing has changed until a code is confirmed.
    expect((await sessionStatus(context, server.baseUrl)).body).toMatchObject({ twoFactor: { method: "email_link" } });

    // A wrong code is refused and says so; the person stays on this step.
    const right = appCode(secret);
    await page.getByLabel("Authentication code").fill(right === "000000" ? "111111" : "000000");
    await page.getByRole("button", { name: "Verify" }).click();
    await page.getByRole("alert").waitFor();
    expect(await page.getByRole("alert").innerText()).toContain("That code is not right");
    expect(await heading(page)).toBe("Step 2 of 3: scan the QR code");

    await page.getByLabel("Authentication code").fill(appCode(secret));
    await page.getByRole("button", { name: "Verify" }).click();
    await page.getByRole("heading", { name: "Success!" }).waitFor();
    await screenshot(page, "auth-app-06-success");
    expect((await sessionStatus(context, server.baseUrl)).body).toMatchObject({ twoFactor: { method: "auth_app" } });
    expect(server.mail.sent.some((m) => m.to === person.email && m.subject.includes("Authenticator app turned on"))).toBe(true);
  });

  it("4. signs out, and signs in with Email + Password and a fresh code from the app", async () => {
    const { main, secret } = await withAuthApp();
    const { page, context } = main;
    await signOut(page, context);
    const mailsBefore = server.mail.count(person.email);
    await enterPassword(page);
    await page.getByRole("heading", { name: "Enter your authentication code" }).waitFor();
    expect(path(page)).toBe("/login/code");
    // No email link any more: the app is the second factor.
    expect(server.mail.count(person.email)).toBe(mailsBefore);
    await expectNoSession(context);
    await screenshot(page, "auth-app-07-code-page");

    // The code that confirmed the setup is spent: the app shows the next one 30 seconds later.
    server.clock.advanceSeconds(30);
    await page.getByLabel("Authentication code").fill(appCode(secret));
    await page.getByRole("button", { name: "Verify" }).click();
    await expectSignedIn(page, context, "auth_app");
    await screenshot(page, "auth-app-08-home-after-code");
  });

  it("5. signs in with a downloaded recovery code; the same code a second time is refused", async () => {
    const { main, savedCodes } = await withAuthApp();
    const { page, context } = main;
    await signOut(page, context);
    const used = savedCodes[3]!;
    // People type codes any which way: capitals and without dashes still count.
    await submitRecoveryCode(page, used.toUpperCase());
    await expectSignedIn(page, context, "auth_app");
    expect(server.mail.sent.some((m) => m.to === person.email && /recovery code/i.test(m.subject))).toBe(true);

    await signOut(page, context);
    await submitRecoveryCode(page, used);
    await expectRecoveryCodeRefused(page, context);
    await screenshot(page, "auth-app-09-recovery-code-reused");

    // Another one of the saved codes still works.
    await page.getByLabel("Recovery code").fill(savedCodes[4]!);
    await page.getByRole("button", { name: "Verify" }).click();
    await expectSignedIn(page, context, "auth_app");
  });

  it("6. regenerates the recovery codes (confirming the password): old codes are refused, new ones work", async () => {
    const { main, savedCodes } = await withAuthApp();
    // As step 5 left them: two of the saved codes spent on sign-ins elsewhere, eight left.
    for (const code of [savedCodes[3]!, savedCodes[4]!]) {
      const response = await submitRecoveryCodeOverHttp(await passwordStep(server, person), code);
      if (response.statusCode !== 200) throw new Error(`recovery code sign-in: ${response.statusCode} ${response.body}`);
    }
    const { page, context } = main;
    // Eleven minutes on: the proof from signing in is stale, so the change asks for the password again.
    server.clock.advanceSeconds(11 * 60);
    await page.getByRole("link", { name: "Settings", exact: true }).click();
    await page.getByRole("main").getByRole("link", { name: "Team Members" }).click();
    await page.getByRole("link", { name: "Edit your settings" }).click();
    expect(await page.getByRole("main").innerText()).toContain("8 recovery codes left");
    await page.getByRole("link", { name: "Manage" }).click();
    await page.getByRole("heading", { name: "Two-factor authentication" }).waitFor();
    expect(await page.getByRole("main").innerText()).toContain("8 of your recovery codes are unused");
    await screenshot(page, "auth-app-10-manage-on");
    await page.getByRole("button", { name: "Generate new recovery codes" }).click();
    await page.waitForLoadState();
    if ((await heading(page)) === "Confirm your password") {
      await screenshot(page, "auth-app-11-confirm-password");
      await page.getByLabel("Password").fill(person.password);
      await page.getByRole("button", { name: "Confirm" }).click();
      await page.getByRole("status").filter({ hasText: "Password confirmed" }).waitFor();
      await page.getByRole("button", { name: "Generate new recovery codes" }).click();
    }
    await page.getByRole("heading", { name: "Your new recovery codes" }).waitFor();
    const newCodes = await listedCodes(page);
    expect(newCodes).toHaveLength(10);
    for (const code of newCodes) expect(code).toMatch(CODE);
    expect(newCodes.filter((code) => savedCodes.includes(code))).toEqual([]);
    await expectCodesReadable(page);
    expect(await page.getByRole("main").innerText()).toContain("Your old codes no longer work.");
    await screenshot(page, "auth-app-12-new-codes");
    await page.getByRole("button", { name: "Done" }).click();
    await page.getByRole("status").filter({ hasText: "Your new recovery codes are in force." }).waitFor();
    expect(await page.getByRole("main").innerText()).toContain("10 of your recovery codes are unused");
    // Once dismissed, the codes are never shown again.
    const again = await page.goto("/settings/two-factor/recovery-codes.txt");
    expect(again?.status()).toBe(410);
    await page.goto("/");

    await signOut(page, context);
    // An old code that was never used is void now.
    await submitRecoveryCode(page, savedCodes[0]!);
    await expectRecoveryCodeRefused(page, context);
    await screenshot(page, "auth-app-13-old-code-refused");
    await page.getByLabel("Recovery code").fill(newCodes[0]!);
    await page.getByRole("button", { name: "Verify" }).click();
    await expectSignedIn(page, context, "auth_app");
  });
});
